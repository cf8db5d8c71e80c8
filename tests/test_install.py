"""A real runtime-only install: a new virtual environment with `pip install ".[cpu]"`.

It shows that the base install and the cpu extra pull no PyTorch, that `extract` works
there, and that a desktop app built on it with PyInstaller takes the bundled models along.
It needs the package index, as the README's install command does.
"""

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.xdist_group("install")  # one virtual environment for the module


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> tuple[Path, list[str]]:
    """A new virtual environment with `pip install ".[cpu]"` of this source, and the pip command for it."""
    tmp_path = tmp_path_factory.mktemp("install")
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
    return env_dir, pip


def test_runtime_only_install_extracts_without_torch(runtime_env, tmp_path, tiny_model_path, photo_folder):
    env_dir, pip = runtime_env
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


APP = """
import sys

from clothes_extractor import extract_garment

extract_garment(sys.argv[1]).save(sys.argv[2])
"""


def test_a_pyinstaller_app_takes_the_bundled_models_along(runtime_env, tmp_path):
    """A desktop app frozen with PyInstaller, no options: the package's hook packs its models,
    and the app's garment is the script's, byte for byte."""
    env_dir, pip = runtime_env
    added = subprocess.run([*pip, "install", "-q", "pyinstaller"], capture_output=True, text=True, timeout=600)
    assert added.returncode == 0, added.stderr[-3000:]
    (tmp_path / "app.py").write_text(APP)
    python = str(env_dir / "bin" / "python")
    built = subprocess.run(
        [python, "-m", "PyInstaller", "-y", "--log-level", "WARN", "app.py"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    photo = ROOT / "examples" / "photos" / "figure-3.jpg"
    frozen = subprocess.run(
        [str(tmp_path / "dist" / "app" / "app"), str(photo), "frozen.png"], capture_output=True, text=True, cwd=tmp_path
    )
    assert frozen.returncode == 0, frozen.stderr[-3000:]
    script = subprocess.run([python, "app.py", str(photo), "script.png"], capture_output=True, text=True, cwd=tmp_path)
    assert script.returncode == 0, script.stderr[-3000:]
    assert (tmp_path / "frozen.png").read_bytes() == (tmp_path / "script.png").read_bytes()
    packed = sorted(p.name for p in (tmp_path / "dist" / "app").rglob("*.onnx"))
    assert packed == sorted(p.name for p in (ROOT / "clothes_extractor" / "models").glob("*.onnx"))
