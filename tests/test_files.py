"""The one atomic write: complete or absent, short temporary names, stale ones cleaned."""

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clothes_extractor.errors import OutputError
from clothes_extractor.runtime.files import (
    FOREIGN_STALE_S,
    PARTIAL_PATTERN,
    check_output_dir,
    check_writable_file,
    partial_name,
    remove_stale_partials,
    write_atomic,
    writer_host,
)
from conftest import cli_env


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "out.png"
    write_atomic(target, b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]
    write_atomic(target, lambda handle: handle.write(b"more"))
    assert target.read_bytes() == b"more"


def test_a_name_of_255_bytes_can_be_written(tmp_path):
    # The temporary name is short whatever the target's: a legal name stays writable.
    target = tmp_path / ("n" * 251 + ".png")
    write_atomic(target, b"x")
    assert target.read_bytes() == b"x"
    with pytest.raises(OutputError, match=r"File name too long \(its name is 256 bytes\): give it a shorter name"):
        write_atomic(tmp_path / ("n" * 251 + ".webp"), b"x")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_failed_write_leaves_nothing_and_says_why(tmp_path):
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(OutputError, match="a folder of that name is in the way"):
        write_atomic(tmp_path / "taken.png", b"x")

    def broken(handle):
        handle.write(b"half")
        raise RuntimeError("encoder died")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "b.png", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]


def test_stale_partials_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".ce-{int(dead.stdout)}-0123abcd.partial"
    alive = tmp_path / f".ce-{os.getpid()}-89abcdef.partial"
    other = tmp_path / ".not-ours.partial"
    for path in (stale, alive, other):
        path.write_bytes(b"x")
    assert PARTIAL_PATTERN.match(stale.name)
    assert remove_stale_partials(tmp_path) == 1
    assert not stale.exists() and alive.exists() and other.exists()


def test_asking_whether_a_writer_still_runs_never_ends_it(tmp_path):
    """The clean-up asks whether the process named in a partial file runs. On Windows
    ``os.kill(pid, 0)``, which asked it, ends that process (whatever had the pid of a killed
    run's file: another job writing the same folder, or any program); it asks the Windows API
    there now. (This machine runs the POSIX way; the test holds on both.)"""
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    partial = tmp_path / f".ce-{writer_host()}-{running.pid}-0123abcd.partial"
    partial.write_bytes(b"x")
    try:
        assert remove_stale_partials(tmp_path) == 0 and partial.exists()
        time.sleep(0.2)
        assert running.poll() is None  # asked, not ended
    finally:
        running.kill()
        running.wait()
    assert remove_stale_partials(tmp_path) == 1 and not partial.exists()  # ended: its file is stale


def test_a_writer_ended_but_not_reaped_is_gone_and_a_sweep_can_wait_for_writers_just_killed(tmp_path):
    """A process that has ended stays in the process table until its parent reaps it (where nothing
    does, a container's first process, for good): its temporary file was kept as a live writer's (a
    stopped local Ray's worker left one). And a stopped job's sweep waits, a little, for writers that
    are ending (``wait_s``), where the sweep without it keeps their files."""
    ended = subprocess.Popen(["true"])  # (not waited for: a zombie once it ends)
    ending = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    try:
        time.sleep(0.5)
        partials = [tmp_path / f".ce-{writer_host()}-{process.pid}-0123abcd.partial" for process in (ended, ending)]
        for partial in partials:
            partial.write_bytes(b"x")
        assert remove_stale_partials(tmp_path) == 1 and not partials[0].exists() and partials[1].exists()
        assert remove_stale_partials(tmp_path, wait_s=30) == 1 and not partials[1].exists()  # (it ended meanwhile)
    finally:
        for process in (ended, ending):
            process.kill()
            process.wait()


def test_partials_of_another_machine_are_judged_by_age_not_by_a_process_id(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here, elsewhere = writer_host(), "0" * 8 if writer_host() != "0" * 8 else "1" * 8
    mine = tmp_path / f".ce-{here}-{int(dead.stdout)}-0123abcd.partial"  # this machine's, its writer gone
    writing = tmp_path / f".ce-{elsewhere}-{int(dead.stdout)}-89abcdef.partial"  # a shard's on another machine
    left = tmp_path / f".ce-{elsewhere}-{int(dead.stdout)}-deadbeef.partial"  # another machine's, a day old
    for path in (mine, writing, left):
        path.write_bytes(b"x")
    old = time.time() - FOREIGN_STALE_S - 60
    os.utime(left, (old, old))
    assert partial_name(tmp_path / "a.png").name.startswith(f".ce-{here}-{os.getpid()}-")
    assert all(PARTIAL_PATTERN.match(path.name) for path in (mine, writing, left))
    assert remove_stale_partials(tmp_path) == 2
    assert not mine.exists() and writing.exists() and not left.exists()


WRITER = """
import sys
from pathlib import Path

from clothes_extractor.runtime.files import write_atomic

def slowly(handle):
    handle.write(b"half")
    handle.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # until the other run has looked at the folder
    handle.write(b" and the rest")

write_atomic(Path(sys.argv[1]), slowly)
"""
LAUNCHER = """
import subprocess, sys
from pathlib import Path

# the writer's process id: one this machine's own namespace is unlikely to have running
try:
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(int(Path("/proc/sys/kernel/pid_max").read_text()) - 1000))
except OSError:
    pass  # (a low one then; the test skips if this machine runs a process of that id)
sys.exit(subprocess.run([sys.executable, *sys.argv[1:]]).returncode)
"""


def test_a_run_in_another_pid_namespace_does_not_remove_a_file_being_written(tmp_path):
    """A shard in another container (its own process ids) writing the same output folder: a run
    starting beside it removed its partial file mid-write until the 55th stop, as a dead
    process's, and its write failed (``cannot write ...: No such file or directory``)."""
    namespace = ["unshare", "--pid", "--fork", "--mount-proc"]
    try:
        usable = subprocess.run([*namespace, "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        usable = False
    if not usable:
        pytest.skip("needs unshare and the right to make a PID namespace (root)")
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    out = tmp_path / "out"
    out.mkdir()
    command = [*namespace, sys.executable, tmp_path / "launcher.py", tmp_path / "writer.py", out / "a.png"]
    writer = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert writer.stdout.readline() == "writing\n"
        (partial,) = out.iterdir()
        pid = int(PARTIAL_PATTERN.match(partial.name).group(2))
        if os.path.exists(f"/proc/{pid}"):
            pytest.skip(f"the writer's process id {pid} is one this machine runs too: nothing to tell apart")
        assert remove_stale_partials(out) == 0 and partial.exists()
        writer.stdin.write("go\n")
        writer.stdin.close()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
    assert [p.name for p in out.iterdir()] == ["a.png"] and (out / "a.png").read_bytes() == b"half and the rest"


def test_output_files_named_by_options_are_checked_first(tmp_path):
    check_writable_file(tmp_path / "new" / "sheet.png", "--sheet", (".png",))
    assert list((tmp_path / "new").iterdir()) == []  # the check leaves nothing behind
    with pytest.raises(OutputError, match="must end in .png"):
        check_writable_file(tmp_path / "sheet", "--sheet", (".png",))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_writable_file(tmp_path / "dir.png", "--sheet", (".png",))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot be written"):
        check_writable_file(tmp_path / "file" / "sheet.png", "--sheet", (".png",))


RACE_MAIN = """
if __name__ == "__main__":  # three processes, each round started at once (a barrier); prints the failures
    root, rounds = Path(sys.argv[1]), int(sys.argv[2])
    start, failures = Barrier(3), Queue()
    processes = [Process(target=work, args=(start, failures, root, i, rounds)) for i in range(3)]
    for process in processes:
        process.start()
    failed = [message for _ in processes for message in failures.get(timeout=120)]
    for process in processes:
        process.join()
    print(len(failed), *failed[:3], sep="\\n")
"""
RACE_IMPORTS = """
import sys
from multiprocessing import Barrier, Process, Queue
from pathlib import Path

from clothes_extractor.errors import OutputError
from clothes_extractor.runtime.files import check_output_dir, held_folder, write_atomic
"""


def failures_in_a_race(work: str, root: Path, rounds: int) -> list[str]:
    """Run ``work`` (a function ``work(start, failures, root, index, rounds)`` in a script) in
    three processes, each round at once: the messages of what failed, first the count."""
    script = root.parent / f"{root.name}.py"
    script.write_text(RACE_IMPORTS + work + RACE_MAIN)
    done = subprocess.run([sys.executable, script, root, str(rounds)], capture_output=True, text=True,
                          env=cli_env(), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


SHARDS_START = """
def work(start, failures, root, index, rounds):
    failed = []
    for k in range(rounds):
        start.wait()  # the three check the same new folder at once, then write into it
        try:
            check_output_dir(root / str(k))
            write_atomic(root / str(k) / f"s{index}", b"x", sync=False)
        except OutputError as exc:
            failed.append(str(exc))
    failures.put(failed)
"""


def test_shards_starting_together_into_a_new_folder_do_not_remove_it_from_under_one_another(tmp_path):
    """The check made the missing output folder, wrote a file there and removed the folder
    again; a shard started with it, whose own check or first write came in between, found no
    folder ("cannot write ...: No such file or directory"): 9 to 36 times in 100 rounds here."""
    rounds = 100
    failed = failures_in_a_race(SHARDS_START, tmp_path / "out", rounds)
    assert failed[0] == "0", failed
    folders = list((tmp_path / "out").iterdir())
    assert sorted(folder.name for folder in folders) == sorted(map(str, range(rounds)))
    assert all(sorted(p.name for p in folder.iterdir()) == ["s0", "s1", "s2"] for folder in folders)


def test_stale_partials_below_are_all_removed_while_another_job_checks_the_folder(tmp_path):
    """A recursive clean-up (a folder tree job's) walking the output folder while another job
    (a shard) checked it: the probe folder, gone as the walk came to it, ended the walk there,
    and the stale files after it were left (rglob raised: 535 files left over 200 rounds, once here)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out, stop = tmp_path / "out", threading.Event()

    def shard():  # makes and removes a probe folder (with new/deeper inside it) in out, again and again
        while not stop.is_set():
            check_output_dir(out / "new" / "deeper")

    stale = [out / name / f".ce-{int(dead.stdout)}-0123abcd.partial" for name in "abcdefgh"]
    left = []
    for path in stale:
        path.parent.mkdir(parents=True)
    checking = threading.Thread(target=shard)
    checking.start()
    try:
        for _ in range(200):
            for path in stale:
                path.write_bytes(b"x")
            remove_stale_partials(out, recursive=True)
            left += [path for path in stale if path.exists()]
    finally:
        stop.set()
        checking.join()
    assert left == []


def test_the_output_folder_check_makes_nothing_and_says_what_is_in_the_way(tmp_path):
    check_output_dir(tmp_path / "new" / "deeper")
    check_output_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing made, no probe left
    (tmp_path / "file").write_text("x")
    for where in (tmp_path / "file", tmp_path / "file" / "out"):
        with pytest.raises(OutputError, match=f"cannot write to the output folder {where}: Not a directory"):
            check_output_dir(where)
    with pytest.raises(OutputError, match="File name too long"):  # found before any output is tried
        check_output_dir(tmp_path / "new" / ("n" * 256) / "deeper")
    check_output_dir(tmp_path / "new" / ("n" * 255))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_what_the_system_says_of_a_path_is_one_line_naming_it():
    from clothes_extractor.errors import path_error
    from clothes_extractor.runtime.stages import describe_error

    assert describe_error(OSError(errno.EIO, "Input/output error", "in/a.jpg")) == "in/a.jpg: Input/output error"
    long = path_error(OSError(errno.ENAMETOOLONG, "File name too long", "in/" + "n" * 300 + "/a.jpg"))
    assert long == f"in/{'n' * 300}/a.jpg: File name too long (a name in it is 300 bytes): give a shorter one"
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")
    assert path_error(moved) == "a -> b: Invalid cross-device link"
    assert describe_error(OSError("no path")) == "unexpected OSError: no path"  # (not about a path: said as it is)


def test_a_held_folder_is_one_process_s_and_leaves_nothing_of_its_own(tmp_path):
    from clothes_extractor.runtime.files import held_folder

    run = tmp_path / "runs" / "a"
    with pytest.raises(RuntimeError), held_folder(run, "busy"):
        assert (run / ".ce-lock").is_file()
        raise RuntimeError("the run failed before writing anything")
    assert list(tmp_path.iterdir()) == []  # the folders made for it went with it
    run.mkdir(parents=True)
    (run / ".ce-lock").write_text("")  # left by a run that was killed: it holds no lock
    with held_folder(run, "busy"):
        (run / "last.pt").write_bytes(b"x")
        with pytest.raises(OutputError, match="^busy$"):  # (flock: another open file of the same process, too)
            with held_folder(run, "busy"):
                pass
    assert [p.name for p in run.iterdir()] == ["last.pt"]
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match="cannot write .*a-file: File exists"), held_folder(tmp_path / "a-file", ""):
        pass


RUNS_START = """
def work(start, failures, root, index, rounds):
    failed = []
    for k in range(rounds):
        start.wait()  # three runs into one new folder at once; the first fails before writing anything
        try:
            with held_folder(root / str(k) / "run", "busy"):
                if index == 0:
                    raise RuntimeError
        except RuntimeError:
            pass
        except OutputError as exc:
            if str(exc) != "busy":
                failed.append(str(exc))
    failures.put(failed)
"""


def test_runs_into_one_new_folder_are_told_busy_never_that_it_is_gone(tmp_path):
    """A run that made the folder and failed at once removes it; one started with it, between
    making the folder and opening its lock file, found no folder (``cannot write ...: No such
    file or directory``, or ``File exists``: 251 in 4,000 here): it makes the folder again."""
    failed = failures_in_a_race(RUNS_START, tmp_path / "out", 300)
    assert failed[0] == "0", failed
