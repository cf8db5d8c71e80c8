"""Helpers shared by the commands: error reporting, option parsing, optional imports."""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

from ..errors import ClothesExtractorError

EXIT_INTERRUPTED = 130


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's typed errors into one-line messages and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ClothesExtractorError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def parse_size(value: str, option: str = "--size") -> tuple[int, int]:
    """``HEIGHTxWIDTH`` -> (height, width)."""
    try:
        height, width = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HEIGHTxWIDTH (e.g. 256x192)", param_hint=option) from None
    if height < 1 or width < 1:
        raise click.BadParameter(f"{value!r}: both sides must be positive", param_hint=option)
    return height, width


def require_torch(purpose: str, extra: str = "train") -> None:
    """Fail with the pip command to run when PyTorch is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise click.ClickException(f'{purpose} needs PyTorch: pip install "clothes-extractor[{extra}]"') from None
