"""When a training run stops and at what rate: its step budget, its clock (``--time-limit``)
and a stop asked for by a signal (Ctrl-C, or the SIGTERM a scheduler, ``timeout`` or a
preempted cloud machine sends), which ends the run the way the clock does: at the next
step, validated, ``last.pt`` saved (and ``best.pt`` if better), so ``--resume`` goes on
from there instead of from the last epoch's checkpoint (45-90 minutes of CPU work back).
"""

from __future__ import annotations

import logging
import signal
from contextlib import AbstractContextManager

import torch

from ..runtime.signals import Pending, handled_signals, restore
from .distributed import Distributed

log = logging.getLogger(__name__)


class StopRequest:
    """The first SIGINT/SIGTERM, noted; the handlers from before are back at once, so a
    second signal acts as it always does (KeyboardInterrupt, or the process ends)."""

    def __init__(self, previous: dict[int, object]):
        self.previous = previous
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def note(self, signum: int, _frame: object) -> None:
        self.signum = signum
        restore(self.previous)
        log.warning(
            "%s: the run stops after this step (validate, save last.pt); send it again to stop at once",
            signal.Signals(signum).name,
        )

    def deliver(self) -> None:
        """After the run is saved: the signal's usual effect (the exit status a caller expects)."""
        if self.signum is not None:
            pending = Pending(self.previous)
            pending.noted.append(self.signum)
            pending.check()


def stop_requests() -> AbstractContextManager[StopRequest]:
    """SIGINT and SIGTERM ask the run to stop (``StopRequest``) while inside."""
    return handled_signals(StopRequest)


def progress(
    step: int,
    total_steps: int,
    elapsed_s: float,
    time_limit_min: float | None,
    dist_info: Distributed,
    device: torch.device,
    stop: bool = False,
) -> float:
    """How far the run is, 0..1: by steps, or by the clock where that is further on; 1 once
    a stop is asked for.

    Under DDP the ranks agree on the furthest value, so all stop together (a signal may
    reach them a step apart) and use the same rate.
    """
    share = step / total_steps
    if time_limit_min is not None:
        share = max(share, elapsed_s / (60 * time_limit_min))
    if stop:
        share = max(share, 1.0)
    if dist_info.world > 1:
        import torch.distributed as dist

        value = torch.tensor([share], dtype=torch.float64, device=device)  # NCCL reduces CUDA tensors
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        share = float(value)
    return share


def lr_factor(schedule: str, progress: float) -> float:
    """Learning-rate multiplier at ``progress`` (0..1) of the run."""
    if schedule == "linear":
        return min(1.0, 2.0 * (1.0 - progress))  # pix2pix: constant, then linearly to 0 over the second half
    return 1.0
