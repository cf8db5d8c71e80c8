"""A training run stopped by a signal (Ctrl-C; the SIGTERM of a scheduler, of ``timeout``
or of a preempted machine) is validated and saved at the next step and resumes from there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from clothes_extractor.data.synth import write_synthetic
from conftest import ROOT


def start_training(data, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = ["--task", "generator", "--data", str(data), "-o", str(out), "--size", "64x48", "--depth", "3"]
    args += ["--ngf", "4", "--batch-size", "4", "--workers", "0", "--val-limit", "4", "--log-every", "1", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", "-v", "train", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )


class StderrReader:
    """A process's stderr lines, read on a thread as they come."""

    def __init__(self, process):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process):
        for line in process.stderr:
            self.lines.append(line)

    def until(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            assert self.thread.is_alive() and time.monotonic() < deadline, f"no {needle!r}:\n{self.text()}"
            time.sleep(0.05)

    def text(self) -> str:
        return "".join(self.lines)

    def all(self, timeout: float = 120) -> str:
        """Every line, once the process has closed its stderr."""
        self.thread.join(timeout)
        return "".join(self.lines)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_at_the_next_step_saved_and_resumable(tmp_path, signum, status):
    data = tmp_path / "data"
    write_synthetic(data, 12, seed=1, size=(64, 48))
    # no checkpoint at the ends of epochs: only the stop writes one
    process = start_training(data, tmp_path / "run", "--max-steps", "100000", "--val-every", "1000")
    reader = StderrReader(process)
    reader.until("step 3:")
    process.send_signal(signum)
    assert process.wait(120) == status  # the signal's own effect, once the run is saved
    log = reader.all()
    assert "the run stops after this step" in log and "--resume" in log
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert 3 <= saved["step"] < 100000
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == saved["step"] and "val_ssim" in rows[-1]  # validated at the stop
    resumed = start_training(
        data, tmp_path / "run", "--max-steps", str(saved["step"] + 2), "--resume", str(tmp_path / "run" / "last.pt")
    )
    StderrReader(resumed).all()  # to the end (a full pipe would block the run)
    assert resumed.wait(60) == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == saved["step"] + 2
