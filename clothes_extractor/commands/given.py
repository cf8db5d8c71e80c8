"""Photos given as standard input (``-``) or as http(s) URLs: made into files for the job, and
named in its messages and report as they were given."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from ..api.fetches import Fetches
from ..api.web import URL_FETCHES, is_url, shown
from ..errors import InputError, renamed


def resolve_inputs(
    inputs: tuple[str, ...], scratch: Callable[[], Path], fetches: int = URL_FETCHES
) -> tuple[list[Path], dict[Path, str], dict[Path, str]]:
    """Paths for the inputs: ``-`` (stdin) and http(s) URLs become files in the ``scratch()`` folder
    (each URL in a folder of its own: two URLs may end in the same name); those files with the
    input they came from, to name them so in messages and the report; and why each URL not
    fetched was not. Such a URL, one input among several, is that input's failure, the others go
    on: its file is absent (one input alone: ``InputError``). The URLs are fetched together,
    ``fetches`` at once (``Fetches``), while standard input is read."""
    folders = {i: scratch() / f"url-{i}" for i, item in enumerate(inputs) if is_url(item)}
    for folder in folders.values():
        folder.mkdir()
    if len(folders) > 1:
        click.echo(f"fetching {len(folders)} URLs", err=True)
    downloads = Fetches(fetches)
    fetched = {i: downloads.submit(inputs[i], folder) for i, folder in folders.items()}
    paths, given, unfetched = [], {}, {}
    for index, item in enumerate(inputs):
        if item == "-":
            data = sys.stdin.buffer.read()
            if not data:
                raise InputError("no photo on standard input (-)")
            target = scratch() / "stdin"
            target.write_bytes(data)
            paths.append(target)
            given[target] = item
        elif index in fetched:
            try:
                paths.append(fetched[index].result())
            except InputError as exc:
                if len(inputs) == 1:
                    raise
                paths.append(folders[index] / "unfetched")
                unfetched[paths[-1]] = str(exc)
            given[paths[-1]] = shown(item)
        else:
            paths.append(Path(item))
    return paths, given, unfetched


def in_words(given: dict[Path, str]) -> dict[Path, str]:
    """How messages name the temporary files of ``given``: the URL, or standard input's name."""
    return {path: in_messages(item) for path, item in given.items()}


def in_messages(item: str) -> str:
    """An input as messages name it: "-" is "(standard input)"."""
    return "(standard input)" if item == "-" else item


def fetched(options: dict[str, Any], names: Sequence[str], scratch: Callable[[], Path]) -> dict[Path, str]:
    """The options of ``names`` that were given an http(s) URL (a ``str``: ``LocalPath(urls=True)``),
    fetched together (``resolve_inputs``) and replaced in ``options`` by their files; those files
    with their URLs. Each is the one input of its option: one that cannot be fetched is
    ``InputError`` (every one that could not, said)."""
    urls = {name: options[name] for name in names if isinstance(options[name], str)}
    if not urls:
        return {}
    paths, given, unfetched = resolve_inputs(tuple(urls.values()), scratch)
    if unfetched:
        raise InputError("; ".join(unfetched.values()))
    options.update(zip(urls, paths, strict=True))
    return given


def as_given(result: Any, given: dict[Path, str], fields: Sequence[str] = ("input",)) -> Any:
    """``result`` of an input that came from standard input or a URL (each of its ``fields`` that
    names one: ``input``; a try-on's ``person`` and ``garment``), named as it was given."""
    items = {
        field: given[Path(value)] for field in fields if (value := getattr(result, field)) and Path(value) in given
    }
    if not items:
        return result
    error = renamed(result.error, in_words(given)) if result.error else None
    return dataclasses.replace(result, **items, error=error)
