"""The ``clothes-extractor`` command line: a click group that registers one module per command.

Each command parses its options, calls one library function and reports. Heavy imports
(onnxruntime, torch) happen inside the command that needs them, so ``--help`` and the
runtime commands work on an install without PyTorch.
"""

from __future__ import annotations

import sys
import warnings

import click

from . import __version__
from .commands.bench import bench
from .commands.common import set_verbosity
from .commands.data import data
from .commands.evaluate import evaluate
from .commands.export import export
from .commands.extract import extract
from .commands.info import info
from .commands.serve import serve
from .commands.train import train
from .commands.tryon import tryon


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clothes-extractor")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Turn photos of people wearing a garment into flat catalog images of the garment."""
    set_verbosity(verbose)


for command in (extract, tryon, serve, info, export, train, evaluate, data, bench):
    cli.add_command(command)


def main() -> None:
    """Run the CLI; exit codes: 0 ok, 1 failed (with the reason), 2 bad command line, 130
    interrupted (Ctrl-C, also while starting up), 143 terminated (SIGTERM)."""
    # Images over Pillow's limit are refused with our own message; its warning is noise.
    from PIL import Image

    from .commands.common import EXIT_INTERRUPTED, ignore_further_interrupts
    from .interrupts import redeliver_interrupts_from_finalizers

    redeliver_interrupts_from_finalizers()  # (main() called on its own: ``run`` installed it already)
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:  # click's name for a Ctrl-C outside a command's own handling
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    finally:  # the command is over: a Ctrl-C while Python shuts down (logging, atexit) has nothing to stop
        ignore_further_interrupts()


if __name__ == "__main__":
    main()
