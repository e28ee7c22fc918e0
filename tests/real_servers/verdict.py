"""The one JSON line every checker prints (runs inside the server venvs: standard library only).

A checker walks the steps the server itself runs before it loads weights; the first step
that raises ends the walk as REJECTED with the server's own message, a walk that gets
through every step is PASS. ``facts`` records what the server made of the file (the
values its config objects hold), so the test can compare them with the plan.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback

__all__ = ["Walk", "run"]

_MESSAGE_CHARS = 2000  # enough for pydantic's multi-error messages; more is a traceback dump


def _message(exc: BaseException, stderr: str, package: str) -> str:
    if isinstance(exc, SystemExit):  # argparse prints its error and exits 2
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {exc.code}"
    text = " | ".join(line for line in f"{type(exc).__name__}: {exc}".splitlines() if line.strip())
    # where the server raised it: its own last frame, not pydantic's or argparse's
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"/{package}/" in f.filename]
    where = f" [at {frames[-1].filename.rsplit('site-packages/', 1)[-1]}:{frames[-1].lineno}]" if frames else ""
    return text[:_MESSAGE_CHARS] + where


class Walk:
    """Run named steps in order; stop at the first one the server rejects."""

    def __init__(self, checker: str, server_version: str) -> None:
        self.package = checker  # the server's import name: vllm, sglang
        self.report: dict = {"checker": checker, "server_version": server_version, "result": None,
                             "step": None, "message": None, "steps": [], "facts": {}}

    def step(self, name: str, fn, *args, **kwargs):
        """fn(*args, **kwargs), or None after recording the rejection (then ``done`` is True)."""
        if self.done:
            return None
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                value = fn(*args, **kwargs)
        except (Exception, SystemExit) as exc:  # noqa: BLE001  # the server's rejection, whatever its type
            self.report.update(result="REJECTED", step=name, message=_message(exc, err.getvalue(), self.package))
            return None
        self.report["steps"].append(name)
        return value

    @property
    def done(self) -> bool:
        return self.report["result"] is not None

    def finish(self, **facts) -> int:
        """Print the JSON line; exit status 0 PASS, 1 REJECTED."""
        if not self.done:
            self.report["result"] = "PASS"
            self.report["facts"] = facts
        print(json.dumps(self.report, default=str), flush=True)
        return 0 if self.report["result"] == "PASS" else 1


def run(main) -> None:
    """Exit with main()'s status; a checker bug (not a rejection) prints its traceback and exits 2."""
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(2)
