"""The specplan command group's error handling: every way a command ends -> one exit code, one line.

Exit codes are listed in planner/cli.py's docstring. Messages are made printable (control
characters escaped) so that no error, whatever a user typed, takes more than one line.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from typing import Any

import click

from planner.errors import SpecplanError

__all__ = ["ErrorHandlingGroup", "EXIT_DOES_NOT_FIT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_PIPE_CLOSED",
           "DEBUG_ENV"]

EXIT_DOES_NOT_FIT = 1
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell reports for a writer killed by a closed pipe
DEBUG_ENV = "SPECPLAN_DEBUG"


class _PipeClosed(Exception):
    """stdout's reader closed the pipe (not an OSError, so that click does not handle it first)."""


class _Interrupted(Exception):
    """Ctrl-C inside a command (not KeyboardInterrupt, so that click does not print a blank line first)."""


def _printable(text: str) -> str:
    """``text`` on one line: control characters, line separators and lone surrogates escaped."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
                   else ch for ch in text)


def _say(message: str) -> None:
    click.echo(_printable(message), err=True)


def _debug_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class ErrorHandlingGroup(click.Group):
    """Turns every way a command can end into one exit code and at most one line on stderr.

    Usage errors and SpecplanError: one line, exit 2 (or the error's own code). Anything else is
    a bug: one line naming it, exit 4, and the traceback with --debug / SPECPLAN_DEBUG=1.
    """

    debug = False  # set by the group's --debug flag for the current invocation

    def invoke(self, ctx: click.Context) -> Any:  # noqa: D102
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _PipeClosed() from None
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def main(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102
        kwargs["standalone_mode"] = False
        self.debug = _debug_env()
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except (click.Abort, _Interrupted, KeyboardInterrupt):
            _say("specplan: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except _PipeClosed:
            _quiet_stdout()
            sys.exit(EXIT_PIPE_CLOSED)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            prefix = f"{ctx.command_path}: " if ctx is not None else "specplan: "
            _say(f"{prefix}error: {exc.format_message()}")
            sys.exit(exc.exit_code)
        except SpecplanError as exc:
            _say(f"specplan: error: {exc}")
            sys.exit(exc.exit_code)
        except OSError as exc:  # a path the user named: cannot write there, disk full, permission
            where = f"{exc.filename}: " if exc.filename else ""
            _say(f"specplan: error: {where}{exc.strerror or exc}")
            sys.exit(SpecplanError.exit_code)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a bug, said in one line
            if self.debug:
                import traceback

                traceback.print_exc()
            text = str(exc).strip().splitlines()
            _say(f"specplan: internal error: {type(exc).__name__}: {text[0] if text else ''} "
                 "(run with --debug for the traceback)")
            sys.exit(EXIT_INTERNAL)
        sys.exit(rv if isinstance(rv, int) else 0)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests capture stdout)
        pass
