"""Check every GPU path of the runtime against the CPU path on the same seeded inputs.

    python3 benchmarks/gpu_parity.py MODEL.onnx [MODEL.onnx ...] --out results/parity.json

Paths: the CUDA provider with numpy in/out, CUDA with IO binding and CUDA graphs, the
pipelined runner (three buffer slots, copies overlapping compute), and TensorRT where it
is installed: onnxruntime's TensorRT provider and an engine built here, run directly.
Exits non-zero if any path differs from the CPU by more than the export tolerance of the
model's precision.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from clothes_extractor.bench.runner import synthetic_feeds
from clothes_extractor.export.onnx_export import TOLERANCES  # the export check's bounds
from clothes_extractor.runtime.session import ModelSession, SessionSettings, probe_provider


def _engine(model_path: Path, folder: Path, fp16: bool):
    """A TensorRT engine of the model (built here), or None without the tensorrt package."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return None
    from clothes_extractor.export.tensorrt import build_engine
    from clothes_extractor.runtime.engine import EngineSession

    engine = folder / f"{model_path.stem}.engine"
    build_engine(model_path, engine, min_batch=1, opt_batch=8, max_batch=32, fp16=fp16)
    return EngineSession(engine)


def _pipelined(model_path: Path):
    from clothes_extractor.runtime.gpu import PipelinedRunner

    session = ModelSession(model_path, "cuda", settings=SessionSettings(cuda_graph=True))
    runner = PipelinedRunner(session, cuda_graph=True)
    runner.warm_up([1, 8, 32])  # 7 is padded onto 8's graph
    # a stream of two batches through the three-slot upload/compute/download pipeline
    return lambda **feeds: list(runner.map([feeds, feeds]))[-1]


def _graphs(model_path: Path):
    session = ModelSession(model_path, "cuda", settings=SessionSettings(cuda_graph=True))
    session._bound.warm_up([8, 32])
    return session.run  # the second run of a size replays its captured graph


def check(model_path: Path) -> list[dict]:
    reference = ModelSession(model_path, "cpu")
    tolerance = TOLERANCES[reference.contract.precision]
    factories = {
        "cuda": lambda: ModelSession(model_path, "cuda").run,
        "cuda-graph": lambda: _graphs(model_path),
        "pipelined": lambda: _pipelined(model_path),
    }
    if probe_provider("tensorrt")[0]:
        factories["tensorrt"] = lambda: ModelSession(model_path, "tensorrt").run
    folder = Path(tempfile.mkdtemp())
    factories["tensorrt-engine"] = lambda: _engine(model_path, folder, reference.contract.precision == "fp16")
    paths = {}
    for name, factory in factories.items():
        try:
            paths[name] = factory()
        except Exception as exc:  # noqa: BLE001 - reported as a failed path below
            paths[name] = exc
    if paths["tensorrt-engine"] is None:  # no tensorrt package: nothing to check
        del paths["tensorrt-engine"]
    rows = []
    for batch in (1, 7, 32):  # 7: a tail batch, padded onto a captured graph
        feeds = synthetic_feeds(reference, batch, seed=batch)
        expected = reference.run(**feeds).astype(np.int16)
        for name, run in paths.items():
            try:
                if isinstance(run, Exception):
                    raise run
                for _ in range(2):
                    got = run(**feeds).astype(np.int16)
                diff = np.abs(got - expected)
                row = {"path": name, "batch": batch, "max_abs": int(diff.max()), "mean_abs": float(diff.mean())}
                row["ok"] = row["max_abs"] <= tolerance[0] and row["mean_abs"] <= tolerance[1]
            except Exception as exc:  # noqa: BLE001 - every path is reported, failures included
                row = {"path": name, "batch": batch, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            row["model"] = model_path.name
            rows.append(row)
            print(json.dumps(row), flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = [row for model in args.models for row in check(model)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
