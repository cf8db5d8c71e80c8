"""Ray's false alarm left out of stderr (``distributed.quiet.stderr_without``): the lines it
finds go, whatever writes them (native code writes to file descriptor 2 directly); every other
byte reaches stderr in order, a progress bar's unended line at once."""

import io
import subprocess
import sys
import textwrap

import pytest

from clothes_extractor.distributed.quiet import DriverPrints

ALARM = (
    "[2026-12-04 04:15:59,596 E 7600 7600] core_worker.cc:2465: Actor with class name: "
    "'MapWorker(MapBatches(ModelStage))' and ID: '4aa6' has constructor arguments in the object store and "
    "max_restarts > 0. If the arguments in the object store go out of scope or are lost, the actor restart will fail."
)


def run(body: str) -> subprocess.CompletedProcess:
    code = "import os, sys, time\nfrom clothes_extractor.distributed.quiet import stderr_without\n"
    code += textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_the_alarm_goes_and_the_rest_stays_in_order():
    done = run(
        f"""
        sys.stderr.write("before\\n")
        with stderr_without():
            os.write(2, b"native line\\n")
            os.write(2, {ALARM!r}.encode() + b"\\n")
            sys.stderr.write("python line\\n")
            os.write(2, b"[2026-12-04 04:16:00,001 W 7600 7600] raylet.cc:1: another of Ray's lines\\n")
            os.write(2, {ALARM[:60]!r}.encode())  # (one line in two writes)
            time.sleep(0.1)
            os.write(2, {ALARM[60:]!r}.encode() + b"\\nafter it\\n")
            sys.stderr.write("\\r 3/10 a bar")
            sys.stderr.flush()
        sys.stderr.write(" and after\\n")
        print("stdout untouched")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == (
        "before\nnative line\npython line\n"
        "[2026-12-04 04:16:00,001 W 7600 7600] raylet.cc:1: another of Ray's lines\n"
        "after it\n\r 3/10 a bar and after\n"
    )
    assert done.stdout.decode() == "stdout untouched\n"


def test_an_unended_line_is_not_held_back():
    """A progress bar's line (no newline yet) reaches stderr while the job runs."""
    done = run(
        """
        import select
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        with stderr_without():
            os.write(2, b"\\r 1/10")
            ready, _, _ = select.select([read_end], [], [], 5)
            print(os.read(read_end, 100).decode() if ready else "held back")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "\r 1/10\n"


def test_off_it_passes_everything():
    done = run(
        f"""
        with stderr_without(enabled=False):
            os.write(2, {ALARM!r}.encode() + b"\\n")
        """
    )
    assert done.stderr.decode() == ALARM + "\n"


def test_without_a_stderr_it_stands_aside():
    """A process started with file descriptor 2 closed (a service) runs the job all the same."""
    done = run(
        """
        os.close(2)
        with stderr_without():
            print("ran")
        """
    )
    assert done.returncode == 0 and done.stdout.decode() == "ran\n"


TEARDOWN = (
    "Task MapWorker(MapBatches(ModelStage)).submit failed. There are infinite retries remaining, so the task "
    "will be retried. Error: The actor is dead because it was killed by `ray.kill`."
)


def test_what_rays_driver_prints_goes_to_stderr_less_a_stopped_jobs_teardown():
    """``DriverPrints`` (``extract --ray``'s ``sys.stdout``) fed by Ray's own printing of its cluster's
    errors: they reach the target a line at a time, colours and all, and the teardown line does not."""
    worker = pytest.importorskip("ray._private.worker", reason="the [ray] extra is not installed")
    target = io.StringIO()
    prints = DriverPrints(target)
    for line in (TEARDOWN, "A worker died or was killed while executing a task by an unexpected system error."):
        worker.print_worker_logs({"lines": [line], "pid": "raylet", "is_err": False}, prints)
    prints.write("a part of a line ")
    assert target.getvalue().count("\n") == 1 and "(raylet)" in target.getvalue()
    assert "A worker died" in target.getvalue() and "retries remaining" not in target.getvalue()
    prints.write(f"and its end\n{TEARDOWN[:40]}")
    prints.write(f"{TEARDOWN[40:]}\nan unended line")
    prints.flush()
    assert target.getvalue() == (
        "\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task by an unexpected system error.\n"
        "a part of a line and its end\nan unended line"
    )
