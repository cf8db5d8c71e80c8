"""Checking settings read from files and option dictionaries (contracts, configs, checkpoints)."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping


def unknown_key(data: Mapping[str, Any], cls: type) -> str | None:
    """A message for the first key of ``data`` that is not a field of dataclass ``cls``.

    The message suggests the closest field name, so a typo says what was meant.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            return f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return None
