"""Check every GPU path of the runtime against the CPU path on the same seeded inputs.

    python3 benchmarks/gpu_parity.py MODEL.onnx [MODEL.onnx ...] --out results/parity.json

Paths: the CUDA provider with numpy in/out (``ModelSession.run``), IO binding with CUDA
graphs and the pipelined runner (``bench.iobinding``: three buffer slots, copies
overlapping compute), and onnxruntime's TensorRT provider where libnvinfer loads. A
catalog-resolution generator is also checked with its photo at 1024x768. Exits non-zero
if any path differs from the CPU by more than the export tolerance of the model's precision.
``--no-graphs``: the pipelined runner without CUDA graphs, and no CUDA-graph path, for a model
that computes its photo's size (a warping generator), which a CUDA graph cannot capture.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from clothes_extractor.bench.iobinding import BoundRunner, PipelinedRunner
from clothes_extractor.eval.synthetic import synthetic_feeds
from clothes_extractor.export.onnx_export import tolerance_key
from clothes_extractor.export.tolerances import tolerances_for
from clothes_extractor.runtime.providers import SessionSettings, probe_provider
from clothes_extractor.runtime.session import ModelSession


def _graphs(model_path: Path):
    session = ModelSession(model_path, "cuda", settings=SessionSettings(cuda_graph=True))
    runner = BoundRunner(session, cuda_graph=True)
    return lambda **feeds: runner.run(**feeds)  # the second run of a shape replays its captured graph


def _pipelined(model_path: Path, graphs: bool = True):
    session = ModelSession(model_path, "cuda", settings=SessionSettings(cuda_graph=graphs))
    runner = PipelinedRunner(session, cuda_graph=graphs)
    # a stream of two batches through the three-slot upload/compute/download pipeline
    return lambda **feeds: list(runner.map([feeds, feeds]))[-1]


def check(model_path: Path, graphs: bool = True) -> list[dict]:
    reference = ModelSession(model_path, "cpu")
    contract = reference.contract
    table = tolerances_for(contract)
    tolerance = table[tolerance_key(contract.precision, reference.metadata)]
    factories = {
        "cuda": lambda: ModelSession(model_path, "cuda").run,
        "cuda-graph": lambda: _graphs(model_path),
        "pipelined": lambda: _pipelined(model_path, graphs),
    }
    if not graphs:
        del factories["cuda-graph"]
    if probe_provider("tensorrt")[0]:
        factories["tensorrt"] = lambda: ModelSession(model_path, "tensorrt").run
    paths = {}
    for name, factory in factories.items():
        try:
            paths[name] = factory()
        except Exception as exc:  # noqa: BLE001 - reported as a failed path below
            paths[name] = exc
    sizes = [None] + ([(1024, 768)] if contract.catalog_resolution else [])
    rows = []
    for photo_size in sizes:
        for batch in (1, 7, 32):  # 7: a tail batch
            feeds = synthetic_feeds(contract, batch, seed=batch, photo_size=photo_size)
            expected = {k: v.astype(np.int16) for k, v in reference.run(**feeds).items()}
            for name, run in paths.items():
                rows.append(_compare(name, run, feeds, expected, tolerance, batch, photo_size, model_path))
    return rows


def _compare(name, run, feeds, expected, tolerance, batch, photo_size, model_path) -> dict:
    row = {"model": model_path.name, "path": name, "batch": batch, "photo": list(photo_size) if photo_size else None}
    try:
        if isinstance(run, Exception):
            raise run
        for _ in range(2):
            got = run(**feeds)
        worst = [np.abs(got[k].astype(np.int16) - v) for k, v in expected.items()]
        row.update(max_abs=int(max(d.max() for d in worst)), mean_abs=float(max(d.mean() for d in worst)))
        row["ok"] = row["max_abs"] <= tolerance[0] and row["mean_abs"] <= tolerance[1]
    except Exception as exc:  # noqa: BLE001 - every path is reported, failures included
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-graphs", action="store_true", help="check the GPU paths without CUDA graphs")
    args = parser.parse_args()
    rows = [row for model in args.models for row in check(model, graphs=not args.no_graphs)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
