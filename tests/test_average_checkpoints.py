"""``train.checkpoint.average_checkpoints`` and ``scripts/average_checkpoints.py``: the mean
of runs of one network (a model soup) is a checkpoint that builds, exports and starts runs."""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from clothes_extractor.errors import CheckpointError  # noqa: E402
from clothes_extractor.train.checkpoint import average_checkpoints, load_model, save_checkpoint  # noqa: E402
from clothes_extractor.train.networks import UNet, UNetConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def a_run(path: Path, seed: int, ngf: int = 4) -> Path:
    """A checkpoint as training writes it, weights drawn from ``seed``, BatchNorm counters run."""
    torch.manual_seed(seed)
    model = UNet(UNetConfig(height=64, width=48, ngf=ngf, depth=3))
    model.train()
    with torch.no_grad():
        for _ in range(seed + 1):
            model(torch.rand(2, 4, 64, 48))
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(path, model, optimizers={"g": optimizer.state_dict()}, step=10 * (seed + 1), summary={"seed": seed})
    return path


def test_the_mean_is_weighted_per_tensor_counters_from_the_first_and_the_result_loads(tmp_path):
    runs = [a_run(tmp_path / f"s{seed}.pt", seed) for seed in range(3)]
    averaged = average_checkpoints(runs, tmp_path / "soup.pt", weights=[1, 1, 2])
    parts = [torch.load(run, weights_only=True)["model"] for run in runs]
    floats = [key for key, value in parts[0].items() if value.is_floating_point()]
    assert len(floats) > 10
    for key in floats:
        expected = 0.25 * parts[0][key] + 0.25 * parts[1][key] + 0.5 * parts[2][key]
        assert torch.allclose(averaged["model"][key], expected, atol=1e-6), key
    counters = [key for key, value in parts[0].items() if not value.is_floating_point()]
    assert counters and all(torch.equal(averaged["model"][k], parts[0][k]) for k in counters)
    assert not torch.equal(parts[0][counters[0]], parts[2][counters[0]])  # the runs' counters differ
    assert "optimizers" not in averaged and averaged["step"] == 10  # what --resume reads is left out
    assert [p["weight"] for p in averaged["summary"]["averaged"]] == [0.25, 0.25, 0.5]
    model, payload = load_model(tmp_path / "soup.pt", task="generator")
    assert payload["summary"]["seed"] == 0
    x = torch.rand(1, 4, 64, 48)
    with torch.no_grad():
        mine = model(x)
        alone = load_model(runs[0])[0](x)
    assert mine.shape == alone.shape and not torch.allclose(mine, alone)


def test_other_networks_and_bad_weights_are_refused(tmp_path):
    one, two = a_run(tmp_path / "a.pt", 0), a_run(tmp_path / "b.pt", 1)
    wider = a_run(tmp_path / "wide.pt", 2, ngf=8)
    with pytest.raises(CheckpointError, match="holds another network"):
        average_checkpoints([one, wider], tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="two checkpoints or more"):
        average_checkpoints([one], tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="as many weights"):
        average_checkpoints([one, two], tmp_path / "x.pt", weights=[1])
    with pytest.raises(CheckpointError, match="none negative"):
        average_checkpoints([one, two], tmp_path / "x.pt", weights=[1, -1])
    with pytest.raises(CheckpointError, match="not all 0"):
        average_checkpoints([one, two], tmp_path / "x.pt", weights=[0, 0])
    assert not (tmp_path / "x.pt").exists()


def test_the_script_writes_the_mean_and_says_what_is_wrong(tmp_path):
    one, two = a_run(tmp_path / "a.pt", 0), a_run(tmp_path / "b.pt", 1)
    script = [sys.executable, str(ROOT / "scripts" / "average_checkpoints.py")]
    done = subprocess.run([*script, str(tmp_path / "soup.pt"), str(one), str(two)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "0.500 x" in done.stdout and (tmp_path / "soup.pt").is_file()
    refused = subprocess.run(
        [*script, str(tmp_path / "y.pt"), str(one), str(tmp_path / "missing.pt")], capture_output=True, text=True
    )
    assert refused.returncode == 1 and "checkpoint not found" in refused.stderr
    bad = subprocess.run(
        [*script, str(tmp_path / "y.pt"), str(one), str(two), "--weights", "1,x"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--weights takes numbers" in bad.stderr
    assert not (tmp_path / "y.pt").exists()
