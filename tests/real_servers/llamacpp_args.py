"""The options llama-server accepts, read from llama.cpp's own common/arg.cpp.

llama.cpp declares every option once, in common_params_parser_init:
``add_opt(common_arg({"-md", "--model-draft"}, "FNAME", "help", handler).set_examples({...}).set_env("LLAMA_ARG_..."))``.
An option belongs to llama-server when its examples include LLAMA_EXAMPLE_SERVER or it has
none (then it is common to every tool) and it does not exclude the server; a handler that
calls ``arg_removed(...)`` keeps the name only to fail with "the argument has been removed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ArgDefinitions", "server_options"]

_START = "add_opt(common_arg("
_LIST = re.compile(r"\s*\{([^{}]*)\}")
_QUOTED = re.compile(r'"([^"]*)"')
_ENV = re.compile(r'\.set_env\(\s*"([A-Z0-9_]+)"')
_EXAMPLES = re.compile(r"\.set_examples\(\s*\{([^}]*)\}")
_EXCLUDES = re.compile(r"\.set_excludes\(\s*\{([^}]*)\}")


@dataclass(frozen=True)
class ArgDefinitions:
    """llama-server's flags and LLAMA_ARG_* variables; ``removed`` are names kept only to fail."""

    flags: frozenset[str]
    env: frozenset[str]
    removed: frozenset[str]


def _statement(text: str, start: int) -> str:
    """The add_opt(...) call starting at ``start``, up to its matching parenthesis (strings skipped)."""
    depth, i, quoted = 0, start, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
        i += 1
    raise ValueError(f"unbalanced add_opt at offset {start}")


def _names(call: str) -> set[str]:
    """The flag names: the first brace list, and the negative forms when a second one follows."""
    rest = call[len(_START):]
    names: set[str] = set()
    for _ in range(2):
        match = _LIST.match(rest)
        if not match:
            break
        names |= {n for n in _QUOTED.findall(match.group(1)) if n.startswith("-")}
        rest = rest[match.end():].lstrip()
        if not rest.startswith(","):
            break
        rest = rest[1:]
    return names


def _for_server(call: str) -> bool:
    examples = _EXAMPLES.search(call)
    excludes = _EXCLUDES.search(call)
    if excludes and "LLAMA_EXAMPLE_SERVER" in excludes.group(1):
        return False
    return examples is None or "LLAMA_EXAMPLE_SERVER" in examples.group(1) or "LLAMA_EXAMPLE_COMMON" in examples.group(1)


def server_options(arg_cpp: str) -> ArgDefinitions:
    """Every option llama-server takes, from the text of common/arg.cpp."""
    flags: set[str] = set()
    env: set[str] = set()
    removed: set[str] = set()
    start = arg_cpp.find(_START)
    while start != -1:
        call = _statement(arg_cpp, start)
        if _for_server(call):
            names = _names(call)
            flags |= names
            env |= set(_ENV.findall(call))
            if "arg_removed(" in call:
                removed |= names
        start = arg_cpp.find(_START, start + len(call))
    return ArgDefinitions(frozenset(flags), frozenset(env), frozenset(removed))
