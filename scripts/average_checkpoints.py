"""Average runs of one recipe into one network (a "model soup").

Runs started from the same checkpoint (``train --init``) with other ``--seed``s land in
different places, and on this project's parser the spread between two seeds was wider than
between two recipes (the segmenter card, "Busy backgrounds"); their mean is a network too,
and there kept what each seed lost. The checkpoint they started from can be one of the parts (with
its weight, it pulls the mean back towards it). A parser's ``alone`` head is fitted again on
the mean (``train --alone-head --init OUT.pt``), as on any parser.

    python scripts/average_checkpoints.py OUT.pt RUN1/last.pt RUN2/last.pt [...] [--weights 1,1,...]

Needs the train extra (PyTorch).
"""

import argparse

from clothes_extractor.errors import CheckpointError
from clothes_extractor.train.checkpoint import average_checkpoints, kind_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--weights", help="comma-separated, one per checkpoint (default: all equal)")
    args = parser.parse_args()
    try:
        weights = None if args.weights is None else [float(w) for w in args.weights.split(",")]
    except ValueError:
        parser.error(f"--weights takes numbers separated by commas, got {args.weights!r}")
    try:
        averaged = average_checkpoints(args.checkpoints, args.out, weights)
    except CheckpointError as exc:
        parser.exit(1, f"error: {exc}\n")
    parts = ", ".join(f"{p['weight']:.3f} x {p['checkpoint']}" for p in averaged["summary"]["averaged"])
    task, arch = kind_of(averaged)
    print(f"wrote {args.out}: {task} ({arch}), {parts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
