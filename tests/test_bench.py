"""Benchmark suite: statistics, the result file, compare; timing itself is not asserted."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from clothes_extractor.bench.compare import SCHEMA, load_results, markdown_table, torch_ratios
from clothes_extractor.bench.stats import latency_stats, throughput
from clothes_extractor.errors import InputError
from clothes_extractor.runtime.session import ModelSession
from conftest import TINY_SIZE, VITON_HD_SAMPLE, run_cli

QUICK = ("--warmup-s", "0", "--min-runs", "2", "--min-time-s", "0")


def _cuda_everywhere() -> bool:
    try:
        import onnxruntime
        import torch
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers() and torch.cuda.is_available()


def test_percentiles_on_known_samples():
    stats = latency_stats([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats["p50"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)
    assert stats["p99"] == pytest.approx(99.01)
    assert (stats["min"], stats["max"], stats["mean"]) == pytest.approx((1, 100, 50.5))
    assert stats["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert throughput(8, [0.5, 0.5]) == pytest.approx(16.0)
    with pytest.raises(ValueError):
        latency_stats([])


def result_file(path, label, rows, e2e=None, sha="ab"):
    record = {
        "schema": SCHEMA,
        "fingerprint": {
            "label": label,
            "cpu": "Test CPU",
            "cores": 2,
            "gpu": None,
            "versions": {"onnxruntime": "1"},
            "date": "2026-11-27T00:00:00+00:00",
        },
        "model": {"file": "m.onnx", "sha256": sha * 32, "precision": "fp32", "input": [256, 192]},
        "settings": {},
        "results": [
            {
                "engine": e,
                "provider": "cpu",
                "io": "host",
                "batch": b,
                "images_per_s": ips,
                "latency_ms": {"p99": b / ips * 1000},
            }
            for e, b, ips in rows
        ],
        "e2e": e2e,
    }
    path.write_text(json.dumps(record))
    return path


def test_compare_merges_machines_and_never_mixes_ratios(tmp_path):
    a = result_file(tmp_path / "a.json", "machine-a", [("onnxruntime", 1, 30.0), ("torch-eager-fp32", 1, 10.0)])
    b = result_file(tmp_path / "b.json", "machine-b", [("onnxruntime", 1, 60.0), ("onnxruntime", 8, 100.0)])
    results = load_results([a, b])
    assert torch_ratios(results[0]) == {("onnxruntime", "cpu", "host", 1): pytest.approx(3.0)}
    assert torch_ratios(results[1]) == {}  # no PyTorch row on machine b: no ratio, not a's
    table = markdown_table(results)
    assert "machine-a: images/s (p99 ms)" in table and "machine-b: images/s (p99 ms)" in table
    row = next(line for line in table.splitlines() if line.startswith("| onnxruntime | cpu | host | 1 |"))
    assert "30.0" in row and "60.0" in row and "3.00x" in row
    assert "| onnxruntime | cpu | host | 8 | - | 100.0" in table


def test_compare_skips_other_files_and_warns_about_other_models(tmp_path):
    (tmp_path / "x.json").write_text('{"schema": "other"}')
    with pytest.raises(InputError, match="not a clothes-extractor benchmark result"):
        load_results([tmp_path / "x.json"])
    a = result_file(tmp_path / "a.json", "a", [("onnxruntime", 1, 30.0)])
    b = result_file(tmp_path / "b.json", "b", [("onnxruntime", 1, 60.0)], sha="cd")
    skipped: list[str] = []
    assert len(load_results([a, tmp_path / "x.json", b], skipped)) == 2 and "x.json" in skipped[0]
    done = run_cli("bench", "compare", a, tmp_path / "x.json", b)  # the documented glob meets other JSON
    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stderr and "x.json" in done.stderr
    assert "these results time different models" in done.stderr and "**warning**" in done.stdout


def test_bench_writes_its_result_before_the_table_and_times_extract_against_the_ceiling(
    tiny_model_path, tmp_path, figures
):
    out = tmp_path / "results" / "cpu.json"
    # --e2e-batch-size 4 is not among --batch-sizes: no model-only row to compare with, no crash
    done = run_cli(
        "bench", "--model", tiny_model_path, "--provider", "cpu", "--batch-sizes", "1,2", *QUICK,
        "--e2e", figures, "--e2e-batch-size", "4", "--label", "ci", "-o", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["schema"] == SCHEMA and record["fingerprint"]["label"] == "ci"
    assert record["fingerprint"]["cores"] >= 1 and record["fingerprint"]["versions"]["onnxruntime"]
    assert record["model"]["input"] == [64, 48] and len(record["model"]["sha256"]) == 64
    assert [(r["provider"], r["batch"]) for r in record["results"]] == [("cpu", 1), ("cpu", 2)]
    for row in record["results"]:
        assert row["runs"] >= 2 and row["images_per_s"] > 0
        assert set(row["latency_ms"]) == {"min", "mean", "std", "p50", "p90", "p95", "p99", "max"}
        assert row["session_ms"] > 0 and row["first_run_ms"] > 0
    e2e = record["e2e"]
    assert e2e["ok"] == 6 and e2e["vs_model_only"] is None
    assert {"read", "segment", "infer", "write"} <= set(e2e["stage_share"])
    assert e2e["ceiling"]["photos"] == 6 and e2e["vs_ceiling"] > 0
    # the calling process's serial work per photo (its main thread's is a part of it)
    assert 0 < e2e["calling_cpu_ms"]["main_thread"] <= e2e["calling_cpu_ms"]["process"] * 1.05
    # ...and of the main thread's, the models' runs (the CPU provider runs them on its threads too)
    assert 0 < e2e["calling_cpu_ms"]["main_thread_in_models"] < e2e["calling_cpu_ms"]["main_thread"]
    assert record["peak_rss_mb"] > 0
    assert "| onnxruntime | cpu | host | 2 |" in done.stdout and "host ceiling" in done.stdout
    assert "the calling process's CPU" in done.stdout


def test_the_e2e_note_says_how_many_photos_failed():
    from clothes_extractor.bench.compare import _e2e_note

    e2e = {"photos": 16, "ok": 10, "failed": 6, "images_per_s": 19.5, "provider": "cpu", "batch": 8, "workers": 2}
    note = _e2e_note({**e2e, "stage_share": {"read": 0.5}})
    assert "on 16 photos (6 failed: the rate counts the 10 extracted; `extract` on the folder says why)" in note
    assert "failed" not in _e2e_note({**e2e, "ok": 16, "failed": 0, "stage_share": {}})
    assert "calling process" not in note  # a result written before it was measured
    timed = _e2e_note({**e2e, "stage_share": {}, "calling_cpu_ms": {"process": 11.04, "main_thread": 5.0}})
    assert "the calling process's CPU 11.0 ms a photo (main thread 5.0)" in timed
    split_ms = {"process": 11.04, "main_thread": 5.0, "main_thread_in_models": 3.26}
    split = _e2e_note({**e2e, "stage_share": {}, "calling_cpu_ms": split_ms})
    assert "(main thread 5.0, 3.3 of it in the models' runs)" in split
    pool = _e2e_note({**e2e, "stage_share": {}, "calling_cpu_ms": {**split_ms, "pool_threads": 0.74}})
    assert "(main thread 5.0, 3.3 of it in the models' runs; the process pool's threads 0.7)" in pool
    assert "pool" not in _e2e_note({**e2e, "stage_share": {}, "calling_cpu_ms": {**split_ms, "pool_threads": 0.0}})
    # with worker processes: how many tasks' arrays crossed in shared memory, and where to look if not all
    crossed = _e2e_note({**e2e, "stage_share": {}, "crossed": {"shared memory": 40}})
    assert crossed.endswith("; 40 of 40 tasks' arrays in shared memory")
    short = _e2e_note({**e2e, "stage_share": {}, "crossed": {"shared memory": 30, "pickled": 10}})
    assert short.endswith("; 30 of 40 tasks' arrays in shared memory (see `info`)")
    assert "shared memory" not in _e2e_note({**e2e, "stage_share": {}, "crossed": {}})  # threads


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the threads' CPU from /proc (Linux)")
def test_the_process_pools_own_threads_are_timed_while_the_job_runs():
    """The pool's manager and feeder threads end with the job: sampled while it runs. Threads'
    pools have none; 100 results of 2 MB crossing from worker processes cost them some CPU."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from clothes_extractor.bench.e2e import PoolThreadsCpu

    with PoolThreadsCpu() as threads_only, ThreadPoolExecutor(2) as pool:
        assert len(b"".join(pool.map(bytes, [2_000_000] * 20))) == 40_000_000
    assert threads_only.seconds == 0.0
    context = multiprocessing.get_context("forkserver")
    with PoolThreadsCpu() as timed:
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            assert sum(map(len, pool.map(bytes, [2_000_000] * 100))) == 200_000_000
    assert timed.seconds >= 0.02


def test_bench_defaults_to_the_bundled_generator_and_the_best_provider(tmp_path):
    done = run_cli("bench", "--batch-sizes", "1,1", *QUICK, "-o", tmp_path / "r.json")  # a size given twice: once
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["model"]["task"] == "generator" and record["results"][0]["provider"] in ("cpu", "cuda", "tensorrt")
    assert [r["batch"] for r in record["results"]] == [1]
    assert record["results"][0]["outputs"] == ["garment", "alpha"] and record["settings"]["outputs"] is None


def test_bench_times_the_model_cut_to_the_outputs_asked_for(tmp_path):
    done = run_cli(
        "bench", "--provider", "cpu", "--batch-sizes", "1", *QUICK, "--outputs", "garment", "-o", tmp_path / "r.json"
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["results"][0]["outputs"] == ["garment"] and record["settings"]["outputs"] == ["garment"]
    wrong = run_cli("bench", "--provider", "cpu", "--batch-sizes", "1", *QUICK, "--outputs", "labels")
    assert wrong.returncode != 0 and "cannot serve outputs ['labels']" in wrong.stderr
    both = run_cli("bench", "--outputs", "garment", "--torch-baseline", tmp_path / "r.json")
    assert both.returncode != 0 and "exclude each other" in both.stderr


def test_bench_torch_baseline_and_compare_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (bench extra) is not installed")
    from click.testing import CliRunner

    from clothes_extractor.cli import cli
    from clothes_extractor.train.checkpoint import save_checkpoint
    from conftest import tiny_generator

    model = tiny_generator()
    save_checkpoint(tmp_path / "g.pt", model)
    runner = CliRunner()
    assert runner.invoke(cli, ["export", str(tmp_path / "g.pt"), "-o", str(tmp_path / "g.onnx")]).exit_code == 0
    args = [
        "bench",
        "--model",
        str(tmp_path / "g.onnx"),
        "--provider",
        "cpu",
        "--batch-sizes",
        "1,2",
        "--warmup-s",
        "0",
        "--min-runs",
        "2",
        "--min-time-s",
        "0",
        "--torch-baseline",
        str(tmp_path / "g.pt"),
    ]
    for label in ("one", "two"):
        done = runner.invoke(cli, [*args, "--label", label, "--output", str(tmp_path / f"{label}.json")])
        assert done.exit_code == 0, done.output
    engines = {r["engine"] for r in json.loads((tmp_path / "one.json").read_text())["results"]}
    assert engines == {"onnxruntime", "torch-eager-fp32"}
    done = runner.invoke(
        cli,
        [
            "bench",
            "compare",
            str(tmp_path / "one.json"),
            str(tmp_path / "two.json"),
            "--markdown",
            str(tmp_path / "new" / "table.md"),  # a folder that is not there yet is made
            "--plot",
            str(tmp_path / "new" / "plot.png"),
        ],
    )
    assert done.exit_code == 0, done.output
    table = (tmp_path / "new" / "table.md").read_text()
    assert "one: vs PyTorch" in table and "two: vs PyTorch" in table
    assert (tmp_path / "new" / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "new" / "plot.png").stat().st_size > 10_000
    # a suffix matplotlib cannot write is refused before any work; an unwritable place is said
    text = runner.invoke(cli, ["bench", "compare", str(tmp_path / "one.json"), "--plot", str(tmp_path / "p.txt")])
    assert text.exit_code == 2 and "p.txt: name a .png, .svg, .pdf" in text.output, text.output
    (tmp_path / "file").write_text("")
    blocked = runner.invoke(
        cli, ["bench", "compare", str(tmp_path / "one.json"), "--plot", str(tmp_path / "file/p.svg")]
    )
    assert blocked.exit_code == 1 and f"cannot write {tmp_path / 'file' / 'p.svg'}" in blocked.output, blocked.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "g.onnx", "g.pt", "new", "one.json", "two.json"]


@pytest.mark.skipif(not VITON_HD_SAMPLE.is_dir(), reason=f"{VITON_HD_SAMPLE} is absent")
def test_bench_e2e_on_viton_hd_sample(tiny_model_path, tmp_path):
    done = run_cli(
        "bench", "--model", tiny_model_path, "--provider", "cpu", "--batch-sizes", "8", *QUICK,
        "--e2e", VITON_HD_SAMPLE, "--out", tmp_path / "r.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    e2e = json.loads((tmp_path / "r.json").read_text())["e2e"]
    assert e2e["photos"] == 10 and e2e["ok"] == 10 and e2e["vs_model_only"] > 0


def test_bench_pipelined_io_on_the_cpu_is_the_host_run(tiny_model_path, tmp_path):
    out = tmp_path / "p.json"
    done = run_cli(
        "bench", "--model", tiny_model_path, "--provider", "cpu", "--io", "pipelined,device", "--batch-sizes", "2",
        *QUICK, "--out", out,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["results"]
    assert row["io"] == "host" and row["provider"] == "cpu"  # one memory on the CPU: nothing to pipeline
    done = run_cli("bench", "--model", tiny_model_path, "--io", "host,disk", *QUICK)
    assert done.returncode == 2 and "host, device, pipelined" in done.stderr


def test_a_catalog_resolution_model_is_timed_at_the_photo_size(tiny_flow_path, tiny_model_path, tmp_path):
    done = run_cli("bench", "--model", tiny_model_path, "--photo-size", "128x96", *QUICK)
    assert done.returncode == 2 and "tiny.onnx answers at 64x48 only: it has no photo input to size" in done.stderr
    done = run_cli(
        "bench", "--model", tiny_flow_path, "--provider", "cpu", "--batch-sizes", "2", "--photo-size", "128x96",
        *QUICK, "-o", tmp_path / "f.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = json.loads((tmp_path / "f.json").read_text())["results"]
    assert row["output"] == [128, 96]


def _feeds(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8),
        "mask": rng.integers(0, 256, (n, *TINY_SIZE, 1), dtype=np.uint8),
    }


def test_bound_runner_pads_to_allocated_batch_sizes(tiny_model_path):
    """The IO-binding runner behind CUDA graphs, on the CPU provider: same buffers, same results."""
    from clothes_extractor.bench.iobinding import BoundRunner

    model = ModelSession(tiny_model_path, "cpu")
    runner = BoundRunner(model, cuda_graph=False, device="cpu", pad=True)
    runner.warm_up([4, 8])
    for n in (1, 3, 4, 6, 8, 9):
        feeds = _feeds(n, n)
        assert np.array_equal(runner.run(**feeds)["garment"], model.run(**feeds)["garment"])
    assert sorted(batch for batch, _ in runner._buffers) == [4, 8, 9]  # 1 and 3 padded to 4, 6 to 8; 9 its own


@pytest.mark.parametrize("batches", [0, 1, 2, 3, 7])
def test_pipelined_runner_returns_every_batch_in_order(tiny_model_path, batches):
    """Three buffer slots cycling through upload/compute/download threads, on the CPU provider:
    each output is its own batch's, whatever the number of batches and a ragged tail."""
    from clothes_extractor.bench.iobinding import PipelinedRunner

    model = ModelSession(tiny_model_path, "cpu")
    sizes = [4] * max(batches - 1, 0) + [3] * (batches > 0)
    feeds = [_feeds(n, i) for i, n in enumerate(sizes)]
    with PipelinedRunner(model, cuda_graph=False, device="cpu") as runner:
        runner.warm_up([4])
        outputs = list(runner.map(iter(feeds)))
    assert len(outputs) == batches
    for feed, output in zip(feeds, outputs, strict=True):
        assert np.array_equal(output["garment"], model.run(**feed)["garment"])


def test_interleaved_timing_gives_each_engine_turns_until_each_has_its_runs():
    from clothes_extractor.bench.runner import INTERLEAVE_SLICE_S, BenchSettings, Timer, time_interleaved

    order: list[str] = []

    def runner(name: str, seconds: float):
        def run_once() -> dict[str, float]:
            order.append(name)
            return {"total": seconds}

        return run_once

    slow = INTERLEAVE_SLICE_S * 2  # one run fills a turn
    timers = [Timer({"engine": n, "batch": 2}, runner(n, s), lambda: None) for n, s in (("a", 0.05), ("b", slow))]
    settings = BenchSettings(batch_sizes=(2,), warmup_s=0, min_runs=3, min_time_s=2 * INTERLEAVE_SLICE_S)
    rows = time_interleaved(timers, settings)
    # a turn: one settling run (not recorded), then runs until the slice is full
    turn_a = ["a"] * (1 + round(INTERLEAVE_SLICE_S / 0.05))
    assert order[: len(turn_a) + 2] == [*turn_a, "b", "b"]
    assert order.count("b") == 6 and [r["runs"] for r in rows] == [3 * (len(turn_a) - 1), 3]  # 3 rounds
    assert rows[0]["images_per_s"] == pytest.approx(40) and rows[1]["images_per_s"] == pytest.approx(2 / slow)
    # no minimum time: a turn is one run (after its settling run), in strict alternation
    order.clear()
    rows = time_interleaved(timers, dataclasses.replace(settings, min_time_s=0))
    assert order == ["a", "a", "b", "b"] * 3 and [r["runs"] for r in rows] == [3, 3]


def test_bench_times_each_cpu_stream_count(tiny_model_path, tmp_path):
    out = tmp_path / "s.json"
    quick = ("--batch-sizes", "1,4", "--warmup-s", "0", "--min-runs", "2", "--min-time-s", "0")
    done = run_cli(
        "bench", "--model", tiny_model_path, "--provider", "cpu", "--cpu-streams", "1,2,auto", *quick, "--out", out
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["settings"]["cpu_streams"] == [1, 2, "auto"]
    rows = {(r["engine"], r["batch"]): r["cpu_streams"] for r in record["results"]}
    assert rows[("onnxruntime-1-stream", 4)] == 1 and rows[("onnxruntime-2-streams", 4)] == 2
    assert rows[("onnxruntime", 4)] >= 1  # auto: what SessionSettings picks on this machine
    done = run_cli("bench", "--model", tiny_model_path, "--cpu-streams", "0", *quick)
    assert done.returncode == 2 and "'0' is neither 'auto' nor a positive integer" in done.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_everywhere(), reason="needs onnxruntime-gpu, a CUDA build of PyTorch and an NVIDIA GPU")
def test_bench_times_every_gpu_path_with_pytorch_in_one_run(tmp_path):
    import subprocess
    import sys

    from click.testing import CliRunner

    from clothes_extractor.cli import cli
    from clothes_extractor.train.checkpoint import save_checkpoint
    from conftest import ROOT, tiny_generator

    save_checkpoint(tmp_path / "g.pt", tiny_generator())
    exported = CliRunner().invoke(
        cli, ["export", str(tmp_path / "g.pt"), "-o", str(tmp_path / "g.onnx"), "--precision", "fp16"]
    )
    assert exported.exit_code == 0, exported.output
    # PyTorch is the baseline here: a process where it imports (run_cli blocks it)
    done = subprocess.run(
        [
            sys.executable, "-m", "clothes_extractor", "bench", "--model", str(tmp_path / "g.onnx"),
            "--provider", "cuda", "--io", "host,device,pipelined", "--cuda-graph",
            "--torch-baseline", str(tmp_path / "g.pt"), "--batch-sizes", "1,3", *QUICK, "-o", str(tmp_path / "r.json"),
        ],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {(r["engine"], r["io"], r["batch"]) for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    for batch in (1, 3):
        for io in ("host", "device", "pipelined"):
            assert ("onnxruntime-cuda-graph", io, batch) in rows
        for io in ("host", "device"):
            assert ("torch-graph-fp16-cl", io, batch) in rows
        assert {("torch-eager-fp32", "host", batch), ("torch-eager-fp16-cl", "host", batch)} <= rows
