"""The shared memory the folder job's arrays cross to and from worker processes in
(``runtime/arena.py``), on the system's real shared memory and a real process pool."""

import multiprocessing
import os
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from clothes_extractor.errors import WorkerDied
from clothes_extractor.runtime.arena import ALIGN, SHM_DIR, Arena, Packed, fitting, pack, unpack
from clothes_extractor.runtime.workers import submit_each

pytestmark = pytest.mark.skipif(not os.path.isdir(SHM_DIR), reason="no /dev/shm: shared memory is Linux's here")


@pytest.fixture
def arena():
    made = Arena(4, 64 << 10)
    yield made
    made.close()


def _garment(seed, shape):
    rng = np.random.default_rng(seed)
    return {"garment": rng.integers(0, 256, (*shape, 3), np.uint8), "alpha": rng.integers(0, 256, shape, np.uint8)}


def test_a_value_crosses_with_its_arrays_in_its_slots_and_only_the_rest_pickled(arena):
    value = [(_garment(1, (120, 100)), Path("out/a.png"), "png"), (_garment(2, (120, 100)), Path("out/b.png"), "png")]
    packed = arena.pack(value, [3, 1])  # 48 KB of arrays a call, 64 KB slots
    array_bytes = 2 * 120 * 100 * 4
    assert len(packed.pickled) < 1_000 < array_bytes == sum(length for _, length in packed.spans)
    # in the order of the calls: the first call's arrays in slot 3, the second's in slot 1, aligned
    assert [offset // arena.slot_bytes for offset, _ in packed.spans] == [3, 3, 1, 1]
    assert all(offset % ALIGN == 0 for offset, _ in packed.spans)
    back = arena.unpack(packed)
    for (sent, *rest), (came, *rest_back) in zip(value, back, strict=True):
        assert rest == rest_back and sent.keys() == came.keys()
        assert all(np.array_equal(sent[k], came[k]) and came[k].flags.writeable for k in sent)
    arena.memory.buf[: 4 * arena.slot_bytes] = bytes(4 * arena.slot_bytes)  # the slots reused at once
    assert np.array_equal(back[0][0]["garment"], value[0][0]["garment"])  # copied out: unchanged


def test_a_worker_reads_arrays_where_they_lie_and_its_results_go_after_them(arena):
    view = arena.memory.buf
    args = [(np.arange(1000, dtype=np.int32),)]
    sent = pack(view, arena.slot_bytes, args, [2])
    there = unpack(view, sent, copy=False)[0][0]
    view[sent.spans[0][0] : sent.spans[0][0] + 4] = (7).to_bytes(4, "little")
    assert there[0] == 7  # a view of the slot, no copy
    results = pack(view, arena.slot_bytes, [there * 2], [2], sent.ends)
    offset, (args_offset, args_length) = results.spans[0][0], sent.spans[0]
    assert offset >= args_offset + args_length  # the arguments the results may still view are kept
    assert np.array_equal(unpack(view, results, copy=True)[0], np.r_[14, np.arange(1, 1000) * 2])


def test_arrays_that_do_not_fit_their_slots_cross_pickled_instead(arena):
    big = np.zeros((300, 300), np.uint8)  # 90 KB: larger than a slot of 64 KB
    assert arena.pack([(big,)], [0, 1]) is None
    assert arena.pack([(big[:150].copy(),) for _ in range(3)], [0, 1]) is None  # 45 KB each: the third fits neither
    assert isinstance(arena.pack([(big[:100],), (big[:200],)], [0, 1]), Packed)  # 30 and 60 KB: a slot each
    assert fitting(288, 1 << 20, 64 << 20) == 32  # a container's 64 MB /dev/shm: half of it
    assert fitting(288, 1 << 20, None) == 288 and fitting(288, 1 << 20, 1 << 20) == 0


def test_no_arena_where_the_system_has_no_room_for_a_slot_and_none_is_left_behind():
    closed = []

    class Seen(Arena):
        def close(self):
            closed.append(self.memory.name.lstrip("/"))
            super().close()

    stat = os.statvfs(SHM_DIR)
    too_large = stat.f_blocks * stat.f_frsize + (1 << 20)  # a slot larger than /dev/shm itself
    assert Seen.make(2, too_large) is None and not closed  # not even tried: half of what is free holds none
    with pytest.raises(OSError):  # tried (room taken meanwhile): made, found too large, unlinked
        Seen(2, too_large)
    assert len(closed) == 1 and closed[0] not in os.listdir(SHM_DIR)
    made = Seen.make(2, 1 << 20)
    assert made is not None and made.memory.name.lstrip("/") in os.listdir(SHM_DIR)
    made.close()
    assert closed[1] not in os.listdir(SHM_DIR)


def _double(array):
    return array * 2


def _kill_myself(array):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def processes():
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield pool


def test_a_process_pool_task_takes_a_slot_per_call_and_gives_them_back_once_read(processes, arena):
    calls = [(np.full((100, 100), i, np.uint8),) for i in range(4)]
    shares = submit_each(processes, _double, calls, 2, arena)
    assert len(arena.free) == 0  # four calls in flight: four slots
    assert all(isinstance(share.task.result(), Packed) for share in shares)  # the results' arrays in slots too
    assert len(pickle.dumps(shares[0].task.result())) < 2_000  # what took the pipe: 2 x 10 KB of arrays not
    assert [int(share.result()[0, 0]) for share in shares] == [0, 2, 4, 6]
    assert sorted(arena.free) == [0, 1, 2, 3]
    more = submit_each(processes, _double, calls * 2, 2, arena)  # eight calls, four slots: some tasks pickled
    assert [int(share.result()[0, 0]) for share in more] == [0, 2, 4, 6] * 2 and len(arena.free) == 4


def test_the_slots_of_a_task_whose_pool_broke_are_free_again_once_it_is_shut_down(arena):
    """A worker of a broken pool may still be writing into them: kept till the pool is shut down."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        shares = submit_each(pool, _kill_myself, [(np.zeros(10),), (np.zeros(10),)], 1, arena)
        with pytest.raises(WorkerDied):
            shares[0].result()
        assert len(arena.free) == 2 and len(arena.lost) == 2
    arena.released()  # (shut down: what Workers.renew does)
    assert sorted(arena.free) == [0, 1, 2, 3] and not arena.lost


def test_tasks_sent_before_their_pool_was_found_broken_keep_their_slots_till_it_is_shut_down(arena):
    """``Workers.send`` sends a broken pool's calls again to new processes: the tasks it sent
    before it found the pool broken are dropped, their slots free once that pool is shut down."""
    from concurrent.futures.process import BrokenProcessPool

    class BreaksAtTheSecondTask(ProcessPoolExecutor):
        submitted = 0

        def submit(self, fn, /, *args, **kwargs):
            self.submitted += 1
            if self.submitted == 2:
                raise BrokenProcessPool("found broken")
            return super().submit(fn, *args, **kwargs)

    with BreaksAtTheSecondTask(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        with pytest.raises(BrokenProcessPool):
            submit_each(pool, _double, [(np.zeros(10),) for _ in range(4)], 2, arena)  # two tasks of two calls
        assert len(arena.free) == 2 and len(arena.lost) == 2  # the second's given back, the first's kept
    arena.released()
    assert sorted(arena.free) == [0, 1, 2, 3]


def test_workers_renewed_after_a_death_have_the_whole_arena_again():
    """Before, a job lost its arena to its first dead worker (every slot then in flight stayed
    taken: the rest of the job crossed pickled)."""
    from clothes_extractor.runtime.options import ExtractOptions
    from clothes_extractor.runtime.workers import Workers

    workers = Workers(ExtractOptions(batch_size=2, workers=1, processes=True), 64 << 10, 6)
    try:
        total = len(workers.arena.free)
        shares = workers.send(_kill_myself, [(np.zeros(10),), (np.zeros(10),)], None, 1)
        with pytest.raises(WorkerDied):
            shares[0].result()
        again = workers.send(_double, [(np.ones(10),)], None, 1)  # the pool found broken: renewed
        assert workers.restarts == 1 and again[0].result()[0] == 2
        assert len(workers.arena.free) == total and workers.crossed["shared memory"] == 1
    finally:
        workers.shutdown()


def test_a_folder_job_s_arrays_cross_in_shared_memory_and_its_files_are_the_same(segmenter_path, tmp_path, monkeypatch):
    """Photos read and fitted in worker processes come back, and their garments go out to be
    written, with their arrays in the job's arena: what takes the pipes (pickled by the calling
    process's pool threads, under its GIL) is a fraction of what it was. Arrays that do not fit
    cross pickled, as every array did before: the same files either way, and as with threads;
    the arena is gone from /dev/shm when the job ends."""
    import shutil

    from clothes_extractor.data.synth import synth_sample
    from clothes_extractor.models import model_for
    from clothes_extractor.runtime import pipeline, workers
    from clothes_extractor.runtime.jobs import find_jobs
    from clothes_extractor.runtime.options import ExtractOptions
    from clothes_extractor.runtime.pipeline import run_extraction
    from clothes_extractor.runtime.session import ModelSession
    from conftest import ROOT, far_figure

    piped = []

    class Counted(ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            piped.append(len(pickle.dumps(args)))
            task = super().submit(fn, *args, **kwargs)
            task.add_done_callback(lambda done: piped.append(len(pickle.dumps(done.result()))))
            return task

    (tmp_path / "in").mkdir()
    for i in range(4):
        far_figure(tmp_path / "in", f"far{i}.jpg")  # closer looks' crops too
    for name in sorted(os.listdir(ROOT / "examples" / "photos"))[:4]:
        shutil.copy(ROOT / "examples" / "photos" / name, tmp_path / "in")
    for index in range(2):  # catalog images: garments shown alone (their letterbox goes to the look: ``for_look``)
        synth_sample(index, seed=3, size=(256, 192))[2].save(tmp_path / "in" / f"alone{index}.png")
    model = ModelSession(model_for("generator", gpu=False), "cpu")  # with its silhouette: alpha crosses too
    segmenter = ModelSession(segmenter_path, "cpu")
    context = multiprocessing.get_context("forkserver")
    arenas = []

    class Watched(workers.Workers):
        def __init__(self, *args):
            super().__init__(*args)
            arenas.append(self.arena.ref.name.lstrip("/") if self.arena else None)

    monkeypatch.setattr(pipeline, "Workers", Watched)
    files, bytes_piped, crossed = {}, {}, {}
    for run in ("threads", "shared", "pickled"):
        if run != "threads":
            monkeypatch.setattr(workers, "make_pool", lambda options: Counted(options.workers, mp_context=context))
        if run == "pickled":  # slots too small for a photo's arrays
            monkeypatch.setattr(pipeline, "slot_bytes", lambda *sessions: 4096)
        piped.clear()
        options = ExtractOptions(batch_size=4, workers=2, processes=run != "threads", background="transparent")
        results = []
        out = tmp_path / run
        summary = run_extraction(model, find_jobs([tmp_path / "in"], out, "png"), options, results.append, segmenter)
        crossed[run] = dict(summary.crossed)
        assert [r.status for r in results] == ["ok"] * 10 and "segmenter+zoom" in {r.mask for r in results}
        assert [r.mask for r in results].count("segmenter+alone") == 2, [r.mask for r in results]
        files[run] = {p.name: p.read_bytes() for p in out.iterdir()}
        bytes_piped[run] = sum(piped)
    assert files["shared"] == files["threads"] == files["pickled"]
    # (a garment shown alone is written cut out at its photo's resolution: at 256x192 it fits a slot)
    assert crossed["threads"] == {} and set(crossed["shared"]) == {"shared memory"}
    assert crossed["shared"]["shared memory"] >= 4
    assert set(crossed["pickled"]) == {"pickled"}  # (the summary says which: ``bench --e2e`` prints it)
    assert bytes_piped["shared"] * 20 < bytes_piped["pickled"], bytes_piped  # 71 KB against 7.5 MB here
    assert arenas[0] is None and arenas[1] and not set(arenas[1:]) & set(os.listdir(SHM_DIR))  # threads: none


def test_a_task_whose_calls_cannot_be_pickled_fails_its_own_calls_and_gives_its_slots_back(processes, arena):
    import threading

    shares = submit_each(processes, _double, [(threading.Lock(),), (np.zeros(10),)], 1, arena)  # one task of two
    for share in shares:
        with pytest.raises(TypeError, match="pickle"):
            share.result()
    assert sorted(arena.free) == [0, 1, 2, 3]  # once each, however often its results are asked for
