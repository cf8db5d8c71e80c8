"""Two served models timed round-robin in one process (numpy in/out, CPU), so that drift on a
shared machine falls on both alike: ``python benchmarks/interleaved_models.py A.onnx B.onnx``.

For two versions of one model (same inputs); ``bench`` times one model per run. Inputs are
the model's synthetic feeds; threads 1 and 2, batch 1 and 8; medians of five rounds.
"""

import sys
import time

import numpy as np

from clothes_extractor.bench.runner import synthetic_feeds
from clothes_extractor.runtime.providers import SessionSettings
from clothes_extractor.runtime.session import ModelSession


def main(paths: list[str], rounds: int = 5) -> None:
    sessions = {
        (path, threads): ModelSession(path, "cpu", settings=SessionSettings(intra_op_threads=threads, cpu_streams=1))
        for path in paths
        for threads in (1, 2)
    }
    times: dict[tuple, list[float]] = {(key, batch): [] for key in sessions for batch in (1, 8)}
    for _ in range(rounds):
        for key, session in sessions.items():
            for batch in (1, 8):
                feeds = synthetic_feeds(session.contract, batch)
                session.run(**feeds)
                runs = 8 if batch == 1 else 2
                start = time.perf_counter()
                for _ in range(runs):
                    session.run(**feeds)
                times[key, batch].append((time.perf_counter() - start) / runs / batch * 1000)
    for ((path, threads), batch), values in times.items():
        print(f"{path}: {threads} thread(s), batch {batch}: {np.median(values):.2f} ms per image")


if __name__ == "__main__":
    main(sys.argv[1:])
