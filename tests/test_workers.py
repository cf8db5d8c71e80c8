"""The folder job's trips to its workers (``runtime/workers.py``): several calls in one task,
each call's own result or error, on real thread and process pools."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from clothes_extractor.errors import WorkersKeepDying
from clothes_extractor.runtime.options import ExtractOptions
from clothes_extractor.runtime.processes import WATCH_S
from clothes_extractor.runtime.workers import (
    Raised,
    Share,
    Trip,
    Workers,
    run_each,
    submit_each,
    submit_spread,
)


class _Unpicklable(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()  # a lock cannot be pickled


def _raise_unpicklable(text):
    raise _Unpicklable(f"cannot read {text}")


@pytest.fixture(scope="module")
def processes():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield pool


def test_each_call_gets_its_own_result_or_error_in_one_task_per_worker(processes):
    calls = [("1",), ("2",), ("x",), ("4",), ("5",), ("6",), ("7",)]
    shares = submit_each(processes, int, calls, 2)
    assert len({id(share.task) for share in shares}) == 2  # seven calls, two trips
    assert [share.index for share in shares] == [0, 1, 2, 3, 0, 1, 2]
    assert [share.result() for i, share in enumerate(shares) if i != 2] == [1, 2, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="invalid literal"):
        shares[2].result()
    assert isinstance(shares[2].exception(), ValueError) and shares[3].exception() is None
    assert all(share.done() for share in shares)
    assert submit_each(processes, int, [], 2) == []
    one = submit_each(processes, int, [("9",)], 4)  # fewer calls than tasks: a task each
    assert [share.result() for share in one] == [9]


def test_an_error_that_cannot_cross_from_a_worker_process_is_sent_as_its_description():
    """An exception that cannot be pickled would fail the whole task's result, and with it the
    other calls': from a worker process it crosses as its description instead."""
    results = run_each(_raise_unpicklable, [("a.jpg",)], portable=True) + run_each(int, [("3",)], portable=True)
    assert isinstance(results[0], Raised) and results[1] == 3
    assert type(results[0].error) is RuntimeError and str(results[0].error) == "_Unpicklable: cannot read a.jpg"
    kept = run_each(_raise_unpicklable, [("a.jpg",)], portable=False)[0]  # a thread gets it as it was raised
    assert isinstance(kept.error, _Unpicklable)


def test_an_unpicklable_error_in_a_worker_process_is_that_calls_alone(processes):
    shares = submit_each(processes, _raise_unpicklable, [("a.jpg",)], 1)
    shares += submit_each(processes, int, [("3",)], 1)
    with pytest.raises(RuntimeError, match="_Unpicklable: cannot read a.jpg"):
        shares[0].result()
    assert shares[1].result() == 3


def test_a_task_cancelled_before_it_ran_cancels_each_of_its_calls():
    trip = Trip(Future(), None, [])  # not started yet
    shares = [Share(trip, 0), Share(trip, 1)]
    assert not shares[1].done() and shares[0].cancel() and shares[1].done()
    with pytest.raises(CancelledError):
        shares[1].result()


def test_a_thread_pool_gets_a_task_per_call():
    """Its trips cost next to nothing (nothing pickled), and a task per call keeps its threads
    evenly busy (batched, the 504 VITON photos ran no faster with threads)."""
    with ThreadPoolExecutor(2) as pool:
        shares = submit_each(pool, int, [("1",), ("x",), ("3",)], 1)
        assert len({id(share.task) for share in shares}) == 3
        assert shares[0].result() == 1 and isinstance(shares[1].exception(), ValueError) and shares[2].result() == 3


def test_calls_for_different_pools_go_to_their_own_and_keep_their_order(processes):
    with ThreadPoolExecutor(1) as device:
        pools = [processes, device, processes, device, processes]
        shares = submit_spread(pools, int, [(str(i),) for i in range(5)], 2)
        assert [share.result() for share in shares] == [0, 1, 2, 3, 4]
        assert all(isinstance(share, Share) for share in shares)
        # the process pool's three calls in two tasks, the thread pool's two in a task each
        by_pool = {id(pool): {id(shares[i].task) for i, p in enumerate(pools) if p is pool} for pool in pools}
        assert len(by_pool[id(processes)]) == 2 and len(by_pool[id(device)]) == 2


def test_workers_stop_only_when_they_die_again_and_again_with_no_work_done_in_between():
    """A worker killed now and then in a long job (the out-of-memory killer) costs the photos in
    its pool, not the job; deaths one after another with nothing written between them stop it."""
    workers = Workers(ExtractOptions(workers=1, processes=False))
    workers.MAX_RESTARTS = 2
    try:
        assert not workers.broke
        workers.renew()
        workers.renew()
        workers.worked()
        workers.renew()
        workers.renew()
        assert workers.restarts == 4 and workers.broke
        with pytest.raises(WorkersKeepDying, match=r"kept dying \(3 times in a row, no photo written in between"):
            workers.renew()
    finally:
        workers.shutdown()


def _descendants(pid):
    """The processes under ``pid`` (its fork server, resource tracker and worker processes), from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _shared_memory_of(pids):
    names = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        names |= {line.split()[-1] for line in maps.splitlines() if "/dev/shm/psm_" in line}
    return names


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the job's processes in /proc (Linux)")
def test_worker_processes_are_born_ignoring_ctrl_c():
    """A worker process the pool starts as work comes imports what it runs before its initializer
    ignores Ctrl-C (up to a second on a loaded machine): a terminal's Ctrl-C then printed its
    traceback. The fork server starts ignoring it, so its workers are born so; the calling process
    keeps its own handler. (A process of its own: the fork server is started once a process.)"""
    code = (
        "import signal\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from clothes_extractor.runtime.processes import process_context\n"
        "with ProcessPoolExecutor(1, mp_context=process_context()) as pool:  # (no initializer: as born)\n"
        "    print(pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN)\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    from conftest import cli_env

    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["True", "True"], (done.stdout, done.stderr)


def test_worker_processes_end_when_the_calling_process_is_killed(tiny_model_path, tmp_path):
    """Killed (the out-of-memory killer, kill -9), the calling process left its worker processes
    waiting forever for work (they hold the pool's pipes, so they never saw them close), and with
    them its fork server and the job's shared memory: each now looks for it every second and ends."""
    from conftest import cli_env, person_photo

    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for i in range(200):
        photo, mask = person_photo(i % 7)
        photo.save(photos / f"{i:03d}.png", compress_level=0)
        mask.save(masks / f"{i:03d}.png")
    out = tmp_path / "out"
    args = ["extract", photos, "-o", out, "--model", tiny_model_path, "--masks", masks, "--batch-size", "2"]
    job = subprocess.Popen(
        [sys.executable, "-m", "clothes_extractor", *map(str, args), "--workers", "2", "--processes"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    left = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.poll() is None:
            if out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()):
                break
            time.sleep(0.01)
        under = _descendants(job.pid)
        memory = _shared_memory_of(under)
        assert job.poll() is None and len(under) >= 3 and memory  # a fork server and two workers, in the arena
        job.kill()
        job.wait(timeout=10)
        deadline = time.monotonic() + 10 * WATCH_S
        while time.monotonic() < deadline and {pid for pid in under if Path(f"/proc/{pid}").exists()}:
            time.sleep(0.1)
        left = {pid for pid in under if Path(f"/proc/{pid}").exists()}
        assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in left]
        assert not [name for name in memory if Path(name).exists()]  # the resource tracker unlinked it
    finally:  # (the resource tracker ends by itself once they have, and unlinks what they left)
        for pid in left:
            if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_retries_try_a_photo_of_a_dead_pool_once_more_and_remember_whom_they_tried():
    """A photo whose worker process died waits to be tried again; tried again and dead again, it
    fails with the message that says so; other errors pass through. The jobs tried again are
    held, not just their ids: a later photo allocated where a finished one lay (CPython reuses
    the memory, so the id) is still a first failure."""
    from clothes_extractor.errors import InputError, WorkerDied
    from clothes_extractor.runtime.workers import Retries

    class Job:
        pass

    retries, bad = Retries(), InputError("not an image")
    assert retries.failed(Job(), bad) is bad and not retries
    first = Job()
    assert retries.failed(first, WorkerDied()) is None and retries
    assert retries.next() is first and not retries and retries.count == 1
    again = retries.failed(first, WorkerDied())
    assert isinstance(again, WorkerDied) and again.alone and str(again) == str(WorkerDied(alone=True))
    del first
    for _ in range(200):  # new jobs where the tried one's memory would be free
        assert retries.failed(Job(), WorkerDied()) is None
    assert len(retries.abandoned()) == 200 and not retries and retries.count == 1
