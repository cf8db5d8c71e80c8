"""The largest batch a job runs through its models at once, the command line's and the Python
API's alike: a batch's photos are held in memory together (504 VITON photos in one batch: 1.3 GB;
a 1024x768 photo takes several MB), and a batch of 100000 over a large folder had the system kill
the process without a word. A GPU's throughput levels off by 128-256."""

from __future__ import annotations

import numbers

LARGEST_BATCH = 1024


def check_batch_size(batch_size: object) -> None:
    """``ValueError`` for a batch size that is not a whole number from 1 to ``LARGEST_BATCH``."""
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or not 1 <= batch_size <= LARGEST_BATCH
    ):
        raise ValueError(
            f"batch size must be a whole number from 1 to {LARGEST_BATCH} (a batch's photos are in memory "
            f"together), got {batch_size!r}"
        )
