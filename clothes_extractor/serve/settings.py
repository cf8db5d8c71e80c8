"""``serve``'s settings, and the batchers they make for each model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..runtime.session import ModelSession, trim_memory
from .batcher import Batcher


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 8  # 1: one request per model run (no batching)
    max_wait_ms: float = 10.0  # how long a batch waits for more requests
    max_upload_mb: float = 20.0
    timeout_s: float = 60.0
    max_queue: int = 256
    # web pages of these origins (scheme://host[:port]; "*": any) may call the API from a
    # browser (CORS); none by default: only the page this server serves
    allow_origins: tuple[str, ...] = ()
    # after this many seconds without a request, a batcher that ran gives back the CPU memory
    # its models' last batches grew (``trim_memory``); 0: never
    idle_trim_s: float = 30.0

    def batcher(self, run: Callable, name: str, sessions: Callable[[], Sequence[ModelSession]]) -> Batcher:
        """A ``Batcher`` of ``run`` (``name``: its name in ``/metrics``) with these settings,
        which after a quiet spell trims ``sessions()``: the models ``run`` runs."""
        return Batcher(
            run,
            max_batch=self.max_batch,
            max_wait_ms=self.max_wait_ms,
            max_queue=self.max_queue,
            name=name,
            idle=(lambda: trim_memory(sessions())) if self.idle_trim_s > 0 else None,
            idle_after_s=self.idle_trim_s,
        )
