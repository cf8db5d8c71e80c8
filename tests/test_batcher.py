"""``serve``'s dynamic batching (``serve/batcher.py``), on its own: what runs, and when its
clean-up after a quiet spell runs."""

import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

from clothes_extractor.serve.batcher import Batcher  # noqa: E402


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_the_clean_up_runs_once_per_quiet_spell_after_a_run_and_never_beside_one():
    running = threading.Lock()  # held while a batch runs: the clean-up must never find it held
    calls: list[str] = []

    def run(items):
        with running:
            time.sleep(0.01)
            return [item * 2 for item in items]

    def idle():
        calls.append("busy" if running.locked() else "quiet")

    batcher = Batcher(run, max_batch=4, max_wait_ms=1, idle=idle, idle_after_s=0.2)
    try:
        time.sleep(0.4)
        assert calls == []  # nothing ran yet: nothing to give back
        assert batcher.submit(3).result(timeout=10) == 6
        assert wait_until(lambda: calls == ["quiet"])
        time.sleep(0.4)
        assert calls == ["quiet"]  # one clean-up per quiet spell, not one every idle_after_s
        # a steady trickle, each item sooner than idle_after_s after the last: no clean-up between
        for item in range(8):
            assert batcher.submit(item).result(timeout=10) == item * 2
            time.sleep(0.05)
        assert calls == ["quiet"]
        assert wait_until(lambda: calls == ["quiet", "quiet"])
        assert batcher.idles == 2
    finally:
        batcher.close()


def test_a_failing_clean_up_does_not_stop_the_batches(caplog):
    def idle():
        raise OSError("no memory to give back")

    batcher = Batcher(lambda items: [item + 1 for item in items], idle=idle, idle_after_s=0.05, name="model")
    try:
        assert batcher.submit(1).result(timeout=10) == 2
        assert wait_until(lambda: batcher.idles == 1)
        assert batcher.submit(2).result(timeout=10) == 3  # the thread goes on
    finally:
        batcher.close()
    assert "model: the clean-up after a quiet spell failed" in caplog.text


def test_the_quiet_spell_must_be_positive():
    with pytest.raises(ValueError, match="idle_after_s"):
        Batcher(lambda items: items, idle=lambda: None, idle_after_s=0)
