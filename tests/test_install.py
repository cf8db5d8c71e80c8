"""A real runtime-only install: a new virtual environment with `pip install ".[cpu]"`.

It shows that the base install and the cpu extra pull no PyTorch and that `extract`
works there. It needs the package index, as the README's install command does.
"""

import shutil
import subprocess
import sys
import venv

from conftest import ROOT


def test_runtime_only_install_extracts_without_torch(tmp_path, tiny_model_path, photo_folder):
    # Install from a copy: building in place would leave build/ in the working tree.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    # No pip of its own (bootstrapping one costs a third of the test): the suite's pip installs
    # into it (pip --python), resolving and installing exactly what `pip install` there would.
    venv.create(env_dir, with_pip=False)
    pip = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "--disable-pip-version-check"]
    install = subprocess.run(
        [*pip, "install", "-q", "--no-compile", f"{source}[cpu]"], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True)
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"onnxruntime", "numpy", "pillow", "clothes-extractor"} <= names
    assert not names & {"torch", "onnx", "tensorrt"}, names
    photos, masks = photo_folder
    out = tmp_path / "out"
    done = subprocess.run(
        [
            str(env_dir / "bin" / "clothes-extractor"),
            "extract",
            str(photos),
            "-o",
            str(out),
            "--model",
            str(tiny_model_path),
            "--masks",
            str(masks),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(list(out.iterdir())) == 5
    # The bundled models are in the wheel: no --model, no masks (the segmenter finds them).
    defaults = subprocess.run(
        [
            str(env_dir / "bin" / "clothes-extractor"),
            "extract",
            str(ROOT / "examples" / "photos"),
            "-o",
            str(tmp_path / "defaults"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert defaults.returncode == 0, defaults.stderr
    assert "generator-fp32.onnx + segmenter-fp32.onnx on cpu" in defaults.stderr
    assert len(list((tmp_path / "defaults").iterdir())) == len(list((ROOT / "examples" / "photos").iterdir()))
