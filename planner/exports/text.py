"""Strings that end up in exported files: refused when they could change what a file says.

Every string an export writes (model names, paths, the -o name, the release, anything
read from a plan file) passes ``check_text`` first. YAML, JSON and Python are written by
their serialisers and shell words by ``shlex.quote``, so a checked string can only ever
be data; the checks catch what quoting cannot: a line break ends a comment line (YAML
also breaks lines at U+0085, U+2028 and U+2029), and a model name or path starting with
"-" would be read by the server as an option (``vllm serve --trust-remote-code``).
"""

from __future__ import annotations

from planner.errors import SpecplanError
from planner.inputs import EXPORT_TEXT_CATEGORIES, first_bad_character

__all__ = ["check_text", "check_word", "MAX_TEXT_CHARS"]

MAX_TEXT_CHARS = 4096  # longer than any path or id a server takes (PATH_MAX is 4096)


def check_text(value: object, what: str) -> str:
    """``value`` when it is a string without control characters, else a one-line SpecplanError."""
    if not isinstance(value, str):
        raise SpecplanError(f"{what} must be a string (got {type(value).__name__})")
    if len(value) > MAX_TEXT_CHARS:
        raise SpecplanError(f"{what} is {len(value)} characters long; at most {MAX_TEXT_CHARS} are accepted")
    if (bad := first_bad_character(value, EXPORT_TEXT_CATEGORIES)) is not None:
        raise SpecplanError(f"{what} contains a control character (U+{ord(value[bad[0]]):04X} at position {bad[0]}); "
                            "names and paths must be printable text on one line")
    return value


def check_word(value: object, what: str) -> str:
    """A model name or path: checked text, not empty, and not starting with "-" (an option)."""
    text = check_text(value, what)
    if not text.strip():
        raise SpecplanError(f"{what} is empty")
    if text != text.strip():
        raise SpecplanError(f"{what} {text!r} starts or ends with white space")
    if text.startswith("-"):
        raise SpecplanError(f"{what} {text!r} starts with '-': a server would read it as an option")
    return text
