"""Who wears what in a ``tryon`` run, in the command's words: a pair of files, a folder of persons
(or of garments) and one image of the other side, two folders and the ``--pairs`` file that pairs
their files, or two folders and ``--all-pairs`` (every person in every garment)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import note_unsearched

if TYPE_CHECKING:
    from ..runtime.pairs import Pairs


def check_pairs_options(options: dict[str, Any]) -> None:
    """``UsageError`` for ``--pairs``, ``--all-pairs`` and ``-r`` given together where they cannot be."""
    if options["recursive"] and options["pairs"] is not None:
        raise click.UsageError("-r walks a folder, --pairs names the files in it: give one of them")
    if options["all_pairs"] and options["pairs"] is not None:
        raise click.UsageError("--all-pairs pairs every person with every garment, --pairs names pairs: give one")
    if options["all_pairs"] and options["recursive"]:
        raise click.UsageError(
            "--all-pairs takes the photos of the two folders themselves, not of their subfolders: leave out -r, "
            "or name the pairs in a --pairs file"
        )


def find_pairs(person: Path, garment: Path, options: dict[str, Any], output: Path, shard: Any) -> Pairs:
    """Who wears what: the pairs of a pairs file, every person x the one garment (or the one
    person x every garment; with ``-r``, in subfolders too, the output folder left out), or with
    ``--all-pairs`` every person of a folder x every garment of another; walked as the job goes;
    those of ``shard``."""
    from ..runtime.pairs import Pairs, Tree, read_pairs

    pairs_file, recursive, both = options["pairs"], options["recursive"], person.is_dir() and garment.is_dir()
    if options["all_pairs"]:
        if not both:
            raise click.UsageError(
                "--all-pairs dresses every person of a folder in every garment of another: --person and the garment "
                "must be folders"
            )
        return Pairs(person, garment, shard=shard, every=True)
    if pairs_file is None:
        if both:
            raise click.UsageError(
                "--person and the garment are both folders: give --pairs FILE to say who wears what, or --all-pairs "
                "to dress every person in every garment"
            )
        if not recursive:
            from ..runtime.jobs import unsearched_subfolders

            note_unsearched(unsearched_subfolders([p for p in (person, garment) if p.is_dir()], output))
        return Pairs(person, garment, tree=Tree.of(person, garment, recursive), exclude=[output], shard=shard)
    if not both:
        raise click.UsageError("--pairs names files in folders: --person and the garment must be folders")
    listing, repeats = read_pairs(pairs_file, person, garment)
    if repeats:
        click.echo(f"note: {pairs_file} names {repeats} pair(s) again; each pair is dressed once", err=True)
    return Pairs(person, garment, listing=listing, shard=shard)
