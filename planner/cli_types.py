"""Click parameter types that refuse bad values where they enter: numbers and names.

click's own INT and FLOAT call ``int()`` / ``float()``, which accept what no user means:
``nan``, ``inf``, ``1e309`` (inf), ``1e-400`` (0.0), ``1_000``, Unicode digits (``"١٢"`` is 12)
and, for integers, 4,300-digit strings whose conversion error is itself 4,300 characters.
These types accept plain ASCII decimal numbers only, inside a range the message states.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

import click

from planner.errors import SpecplanError
from planner.inputs import check_name, shown

__all__ = ["Int", "Float", "IntList", "Name", "NAME", "Device"]

_INT = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII digits only (\d would match every script's digits)
_FLOAT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _flag(param: click.Parameter | None) -> str:
    if param is not None and getattr(param, "opts", None):
        return max(param.opts, key=len)
    return f"--{param.name.replace('_', '-')}" if param is not None and param.name else "the value"


def _refuse(param: click.Parameter | None, ctx: click.Context | None, must: str, value: Any) -> NoReturn:
    """One line naming the flag, what it must be, and what was given (escaped, cut short)."""
    raise click.UsageError(f"{_flag(param)} must be {must} (got {shown(value, 40)})", ctx)


class Int(click.ParamType):
    """A whole number from ``low`` to ``high`` (inclusive), written in ASCII decimal digits."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # noqa: D102
        return "INTEGER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:  # noqa: D102
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not _INT.fullmatch(text):
                _refuse(param, ctx, f"a whole number in decimal digits, {self.range()}", value)
            number = int(text)
        if not self.low <= number <= self.high:
            _refuse(param, ctx, self.range(), value)
        return number

    def range(self) -> str:
        """The valid values in words."""
        return f"at least {self.low} and at most {self.high}"


class Float(click.ParamType):
    """A finite decimal number in a range; ``low_open`` / ``high_open`` exclude the bound itself."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # noqa: D102
        return "NUMBER"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:  # noqa: D102
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            text = str(value).strip()
            if not _FLOAT.fullmatch(text):
                _refuse(param, ctx, self.range(), value)
            number = float(text)
        if not math.isfinite(number) or not self._inside(number):
            _refuse(param, ctx, self.range(), value)
        return number

    def _inside(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))

    def range(self) -> str:
        """The valid values in words."""
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {_fmt(self.low)}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {_fmt(self.high)}")
        return "a finite decimal number " + " and ".join(parts) if parts else "a finite decimal number"


class IntList(click.ParamType):
    """Comma-separated whole numbers, each from ``low`` to ``high`` (e.g. ``--batch-sizes 1,4``)."""

    name = "integers"

    def __init__(self, low: int, high: int) -> None:
        self.item = Int(low, high)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:  # noqa: D102
        return "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:  # noqa: D102
        if isinstance(value, tuple):
            return value
        items = [x.strip() for x in str(value).split(",")]
        if not any(items) or any(not x for x in items[:-1]):
            _refuse(param, ctx, f"comma-separated whole numbers, each {self.item.range()}", value)
        return tuple(self.item.convert(x, param, ctx) for x in items if x)


class Name(click.ParamType):
    """A name (model, GPU, format, label): any printable text, no control characters or newlines."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:  # noqa: D102
        try:
            return check_name(str(value), _flag(param))
        except SpecplanError as exc:
            raise click.UsageError(str(exc), ctx) from None


NAME = Name()

_DEVICE = re.compile(r"auto|cpu|mps|cuda(?::[0-9]{1,3})?")


class Device(click.ParamType):
    """A torch device the probe can run on: auto, cpu, mps, cuda or cuda:N."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:  # noqa: D102
        text = str(value).strip().lower()
        if not _DEVICE.fullmatch(text):
            _refuse(param, ctx, "a device: auto, cpu, mps, cuda or cuda:N", value)
        return text
