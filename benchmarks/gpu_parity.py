"""Check every GPU path of the runtime against the CPU path on the same seeded inputs.

    python3 benchmarks/gpu_parity.py MODEL.onnx [MODEL.onnx ...] --out results/parity.json

Paths: the CUDA provider with numpy in/out, CUDA with IO binding and CUDA graphs, and
TensorRT (provider, engine cache) where it starts. Exits non-zero if any path differs
from the CPU by more than the export tolerance of the model's precision.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from clothes_extractor.bench.runner import synthetic_feeds
from clothes_extractor.export.onnx_export import TOLERANCES  # the export check's bounds
from clothes_extractor.runtime.session import ModelSession, SessionSettings, probe_provider


def check(model_path: Path) -> list[dict]:
    reference = ModelSession(model_path, "cpu")
    tolerance = TOLERANCES[reference.contract.precision]
    paths = [("cuda", SessionSettings()), ("cuda-graph", SessionSettings(cuda_graph=True))]
    if probe_provider("tensorrt")[0]:
        paths.append(("tensorrt", SessionSettings()))
    rows = []
    for batch in (1, 7, 32):  # 7: a tail batch, padded onto a captured graph
        feeds = synthetic_feeds(reference, batch, seed=batch)
        expected = reference.run(**feeds).astype(np.int16)
        for name, settings in paths:
            provider = "tensorrt" if name == "tensorrt" else "cuda"
            try:
                session = ModelSession(model_path, provider, settings=settings)
                if settings.cuda_graph and session._bound is not None:
                    session._bound.warm_up([8, 32])
                for _ in range(2):  # the second run replays the captured graph
                    got = session.run(**feeds).astype(np.int16)
                diff = np.abs(got - expected)
                row = {"path": name, "batch": batch, "max_abs": int(diff.max()), "mean_abs": float(diff.mean())}
                row["ok"] = row["max_abs"] <= tolerance[0] and row["mean_abs"] <= tolerance[1]
            except Exception as exc:  # noqa: BLE001 - every path is reported, failures included
                row = {"path": name, "batch": batch, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            row["model"] = model_path.name
            rows.append(row)
            print(json.dumps(row), flush=True)
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
