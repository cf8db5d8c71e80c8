"""The ``clothes-extractor`` command line: a click group that registers one module per command.

Each command parses its options, calls one library function and reports. Heavy imports
(onnxruntime, torch) happen inside the command that needs them, so ``--help`` and the
runtime commands work on an install without PyTorch.
"""

from __future__ import annotations

import logging
import warnings

import click

from . import __version__
from .commands.bench import bench
from .commands.data import data
from .commands.evaluate import evaluate
from .commands.export import export
from .commands.extract import extract
from .commands.info import info
from .commands.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clothes-extractor")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Turn photos of people wearing a garment into flat catalog images of the garment."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for command in (extract, info, export, train, evaluate, data, bench):
    cli.add_command(command)


def main() -> None:
    # Images over Pillow's limit are refused with our own message; its warning is noise.
    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    cli()


if __name__ == "__main__":
    main()
