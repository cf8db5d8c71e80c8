"""``python -m clothes_extractor`` and the ``clothes-extractor`` script.

Ctrl-C at any moment, even while the interpreter is still importing, exits 130 without a
traceback (SIGTERM: 143), as the commands' own handling does once they run.
"""

import sys

from .interrupts import redeliver_interrupts_from_finalizers


def run() -> None:
    redeliver_interrupts_from_finalizers()  # (before the command line's modules load)
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
