"""``flowsim`` command line: one module per sub-command, each with ``register(subparsers)``.

Every expected failure ends the command with one line on stderr,
``flowsim COMMAND: error: ...``, naming the file or the option at fault. Exit codes:

- 0: done, and the run (or every check, every sweep run) succeeded;
- 1: done, but the run ended with a failure status, a check failed or sweep runs are
  left;
- 2: refused: a bad option or setting, a missing, unreadable or invalid file
  (:class:`~flowsim.files.FileFormatError`), an output path that cannot be written;
  nothing was computed, or what was computed is saved;
- 3: an internal error, a bug in flowsim: the traceback is printed, then a line saying so
  (please report it);
- 130: interrupted (Ctrl-C): one line says what was saved and how to resume; nothing
  interrupted is recorded as finished.

``flowsim --traceback COMMAND ...`` prints the traceback of any error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from .._version import __version__

# Sub-command modules of flowsim.cli, in the order ``flowsim --help`` lists them.
COMMANDS = ["run", "figure1", "verify", "figure2", "sweep", "norms"]
#: exit codes (module doc)
EXIT_FAILED, EXIT_REFUSED, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130


class Parser(argparse.ArgumentParser):
    """argparse, with a bad option answered in one line (and ``--help`` named)."""

    def error(self, message):
        self.exit(EXIT_REFUSED, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="flowsim",
        description="Exact gradient flow on deep matrix/tensor factorizations, and checks of "
                    "Razin & Cohen (NeurIPS 2020).",
        epilog="Exit codes: 0 success, 1 a run or check failed, 2 bad input or file, "
               "3 internal error (a bug), 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"flowsim {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="print the full traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def describe(exc: BaseException) -> str:
    """One line for an expected failure: an ``OSError`` names its file."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefix = f"flowsim {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        saved = getattr(exc, "saved", None)
        print(f"{prefix}: interrupted" + (f"; {saved}" if saved else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        # sizes the up-front checks (flowsim.runtime.check_fits) could not foresee
        print(f"{prefix}: error: out of memory: the sizes asked for do not fit in this "
              "machine's memory (use smaller ones)", file=sys.stderr)
        return EXIT_REFUSED
    except (ValueError, TypeError, OSError) as exc:
        # bad input: options, settings, files (FileFormatError is a ValueError; TOML errors
        # come as FileFormatError); OSError: missing, unreadable or unwritable paths
        if args.traceback:
            traceback.print_exc()
        print(f"{prefix}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception:  # noqa: BLE001 - anything else is a bug: say so, with the traceback
        traceback.print_exc()
        print(f"{prefix}: internal error (a bug in flowsim {__version__}); please report it "
              "with the traceback above", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
