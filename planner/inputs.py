"""Reading what the user hands specplan: files, and names typed on the command line.

Every file a user names (calibration, measurements, metrics, llama.cpp outputs, prompts, a
model folder's config.json / tokenizer.json / safetensors headers) is read here, so that
one place refuses what must never be read:

* anything but a regular file: a FIFO would block ``open`` forever and ``/dev/zero`` never
  ends, so the kind of file is checked with ``stat`` before it is opened, and the file is
  opened non-blocking and checked again (it may have been swapped in between);
* files over ``MAX_INPUT_BYTES``: every input specplan reads is kilobytes to a few MiB;
* text that is not UTF-8, JSON nested deeper than ``MAX_NESTING`` or holding integers longer
  than ``MAX_INT_DIGITS`` digits, NaN or infinities, and YAML that expands (anchors and
  aliases) to more than ``MAX_YAML_NODES`` nodes. YAML is only ever read with a safe loader.

Every refusal is a one-line ``SpecplanError`` naming the file (exit 2).
"""

from __future__ import annotations

import json
import math
import os
import stat
import unicodedata
from typing import Any

from planner.errors import SpecplanError

__all__ = [
    "NAME_CATEGORIES", "BIDI_CONTROLS", "MODEL_NAME_CATEGORIES", "EXPORT_TEXT_CATEGORIES", "first_bad_character",
    "MAX_INPUT_BYTES", "MAX_NESTING", "MAX_INT_DIGITS", "MAX_YAML_NODES", "MAX_NAME_CHARS",
    "InputFileError", "read_bytes", "read_head", "read_text", "parse_json", "read_json", "parse_yaml",
    "read_yaml", "check_name", "shown",
]

MAX_INPUT_BYTES = 64 * 1024 * 1024  # 64 MiB: the largest real input (a big tokenizer.json) is ~20 MiB
MAX_NESTING = 64  # containers inside containers; real configs nest 3-5 deep
MAX_INT_DIGITS = 4300  # Python's own int/str conversion limit (sys.int_info.default_max_str_digits)
MAX_YAML_NODES = 1_000_000  # nodes after expanding aliases: stops "billion laughs" documents
MAX_NAME_CHARS = 4096  # PATH_MAX on Linux: a model name may be a folder path
_TEMP_NAME_EXTRA = 14  # ".", ".XXXXXXXX", ".tmp" around the name of a file written atomically
_SHOWN_CHARS = 80  # how much of a bad value an error message repeats


class InputFileError(SpecplanError):
    """A user file that is not a readable, well-formed input (exit 2)."""


def shown(value: object, limit: int = _SHOWN_CHARS) -> str:
    """``value`` quoted for an error message: control characters escaped, cut to ``limit`` characters."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            text = str(value)
        except ValueError:  # an int beyond Python's digit limit
            return "(a number of over 4300 digits)"
        return text[:limit] + ("..." if len(text) > limit else "")
    text = str(value)
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return repr(cut)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((word for test, word in kinds if test(mode)), "not a plain file")


def _label(path: str | os.PathLike[str], what: str | None) -> str:
    return f"{what} {path}" if what else str(path)


def _open_regular(path: str | os.PathLike[str], what: str | None) -> tuple[int, int]:
    """(file descriptor, size in bytes) of a regular file; refuses anything else without reading it."""
    label = _label(path, what)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(f"{label}: no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise InputFileError(f"{label}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if (kind := _kind(st.st_mode)) is not None:
        raise InputFileError(f"{label}: is {kind}, not a regular file")
    try:
        # O_NONBLOCK: if a FIFO replaced the file since the stat, open returns at once instead of waiting.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputFileError(f"{label}: cannot read: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if (kind := _kind(st.st_mode)) is not None:
        os.close(fd)
        raise InputFileError(f"{label}: is {kind}, not a regular file")
    return fd, st.st_size


def _read_fd(fd: int, limit: int) -> bytes:
    chunks, got = [], 0
    with os.fdopen(fd, "rb", closefd=True) as f:
        while got < limit and (chunk := f.read(min(1 << 20, limit - got))):
            chunks.append(chunk)
            got += len(chunk)
    return b"".join(chunks)


def read_bytes(path: str | os.PathLike[str], what: str | None = None, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` bytes."""
    fd, size = _open_regular(path, what)
    if size > max_bytes:
        os.close(fd)
        raise InputFileError(f"{_label(path, what)}: {size} bytes is over the {max_bytes // 2**20} MiB limit for input files")
    data = _read_fd(fd, max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise InputFileError(f"{_label(path, what)}: over the {max_bytes // 2**20} MiB limit for input files")
    return data


def read_head(path: str | os.PathLike[str], n_bytes: int, what: str | None = None) -> tuple[bytes, int]:
    """(the first ``n_bytes`` bytes, the file's size) of a regular file of any size (safetensors headers)."""
    fd, size = _open_regular(path, what)
    return _read_fd(fd, n_bytes), size


def _decode(data: bytes, label: str, log: bool) -> str:
    if log:
        # Saved server logs and llama-speculative stdout+stderr are not data the user wrote: a
        # progress bar or a cut multi-byte character must not stop us reading the counters in them.
        return data.decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8-sig")  # a BOM from a Windows editor is harmless
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{label}: not UTF-8 text (invalid byte at offset {exc.start})") from None


def read_text(path: str | os.PathLike[str], what: str | None = None, *, log: bool = False) -> str:
    """A regular file's text: strict UTF-8, or (``log=True``) invalid bytes replaced by U+FFFD."""
    return _decode(read_bytes(path, what), _label(path, what), log)


# --- JSON ----------------------------------------------------------------------------------------


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (limit {MAX_INT_DIGITS})")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {shown(text, 40)} is out of range")
    return value


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number JSON allows")


def _depth(doc: Any) -> int:
    """Deepest nesting of lists and dicts in ``doc``, iteratively (no recursion limit to hit)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_depth(doc: Any, label: str) -> Any:
    if _depth(doc) > MAX_NESTING:
        raise InputFileError(f"{label}: nested deeper than {MAX_NESTING} levels")
    return doc


def parse_json(text: str | bytes, label: str) -> Any:
    """Parse JSON text; refuses NaN/Infinity, numbers out of range, huge integers and deep nesting."""
    try:
        doc = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputFileError(f"{label}: nested deeper than {MAX_NESTING} levels") from None
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{label}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    except ValueError as exc:
        raise InputFileError(f"{label}: invalid JSON: {str(exc).splitlines()[0]}") from None
    return _check_depth(doc, label)


def read_json(path: str | os.PathLike[str], what: str | None = None) -> Any:
    """A regular file's JSON document (see ``parse_json``)."""
    return parse_json(read_text(path, what), _label(path, what))


# --- YAML ----------------------------------------------------------------------------------------


def _expanded_nodes(root: Any, label: str) -> tuple[int, int]:
    """(nodes after expanding aliases, deepest nesting) of a composed YAML node graph.

    An alias shares its anchor's node object, so sizes are memoised per node: a document whose
    aliases expand to 10^12 nodes is measured in a few thousand steps. Iterative post-order.
    """
    from yaml.nodes import MappingNode, SequenceNode

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # nodes whose children are still being measured
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if isinstance(node, MappingNode):
            children = [c for pair in node.value for c in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        else:
            size[id(node)], depth[id(node)] = 1, 0
            continue
        if not done:
            if id(node) in size or id(node) in open_nodes:
                continue
            open_nodes.add(id(node))
            if any(id(c) in open_nodes for c in children):
                raise InputFileError(f"{label}: a YAML alias refers to a node that contains it (a cycle)")
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
            continue
        open_nodes.discard(id(node))
        size[id(node)] = min(1 + sum(size.get(id(c), 1) for c in children), MAX_YAML_NODES + 1)
        depth[id(node)] = 1 + max((depth.get(id(c), 0) for c in children), default=0)
    return size[id(root)], depth[id(root)]


def parse_yaml(text: str, label: str) -> Any:
    """Parse YAML with the safe loader only; refuses alias bombs and deep nesting."""
    import yaml

    from planner.catalog.loading import SAFE_LOADER

    loader = SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        nodes, deepest = _expanded_nodes(node, label)
        if nodes > MAX_YAML_NODES:
            raise InputFileError(f"{label}: expands to more than {MAX_YAML_NODES} YAML nodes (anchors and aliases)")
        if deepest > MAX_NESTING:
            raise InputFileError(f"{label}: nested deeper than {MAX_NESTING} levels")
        doc = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputFileError(f"{label}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise InputFileError(f"{label}: nested deeper than {MAX_NESTING} levels") from None
    except ValueError as exc:  # int("9" * 5000) in the resolver: over Python's digit limit
        raise InputFileError(f"{label}: invalid YAML: {str(exc).split(';')[0]}") from None
    finally:
        loader.dispose()
    return doc


def read_yaml(path: str | os.PathLike[str], what: str | None = None) -> Any:
    """A regular file's YAML (or JSON) document (see ``parse_yaml``)."""
    return parse_yaml(read_text(path, what), _label(path, what))


# --- names ---------------------------------------------------------------------------------------

# Characters refused in names, one rule per place a name enters (each a set of Unicode
# categories). Cc: C0/C1 controls (newline, CR, escape); Cf: format characters, among them the
# bidirectional overrides; Zl/Zp: line and paragraph separators; Cs: lone surrogates (argv bytes
# that were not UTF-8, kept by surrogateescape); Co/Cn: private-use and unassigned code points.
# Flags and input files: controls, separators, surrogates, and of Cf only the bidi overrides and
# isolates (they make a name read differently from what it is, the "Trojan source" trick).
NAME_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
# Model names (planner.catalog.lookup): every format character too.
MODEL_NAME_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
# Text written into exported files (planner.exports.text): also private-use and unassigned points.
EXPORT_TEXT_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def first_bad_character(value: str, categories: frozenset[str],
                        also: frozenset[str] = frozenset()) -> tuple[int, str] | None:
    """(position, description) of the first character of ``value`` in ``categories`` (or ``also``).

    None when every character is fine. The one loop behind every name check.
    """
    for i, ch in enumerate(value):
        category = unicodedata.category(ch)
        if category in categories or ch in also:
            return i, ("bytes that are not UTF-8" if category == "Cs" else f"a control character (U+{ord(ch):04X})")
    return None


def _bad_char(value: str) -> str | None:
    """What is wrong with a name given as a flag or in an input file, or None."""
    bad = first_bad_character(value, NAME_CATEGORIES, BIDI_CONTROLS)
    return None if bad is None else bad[1]


def check_name(value: str, what: str) -> str:
    """``value`` unchanged, or a one-line error if it holds control characters, newlines or bidi overrides.

    Names end up in YAML, shell scripts, tables and HTML: a newline in a model name would add
    a line (a key, a command) to every exported file, so it is refused where it enters.
    """
    if (bad := _bad_char(value)) is not None:
        raise SpecplanError(f"{what} {shown(value)} contains {bad}; names must be printable text on one line")
    if len(value) > MAX_NAME_CHARS:
        raise SpecplanError(f"{what} is {len(value)} characters long; names are at most {MAX_NAME_CHARS}")
    return value



# --- output paths --------------------------------------------------------------------------------


def check_output(path: str | os.PathLike[str], force: bool, what: str = "-o") -> None:
    """Refuse, before any work is done, an output path that cannot be written.

    The nearest existing folder above it must be a folder (``-o notes.txt/x.yaml`` is refused),
    and an existing output must be a regular file that ``--force`` allows replacing: a FIFO,
    device, directory or symbolic link is never replaced.
    """
    label = f"{what} {path}"
    text = os.fspath(path)
    check_name(text, what)
    if not text.strip():
        raise SpecplanError(f"{what}: the output path is empty")
    if text.endswith(("/", os.sep)):
        raise SpecplanError(f"{label}: ends with '/', which names a folder; give a file name")
    target = os.path.abspath(path)
    if os.path.islink(target):
        # Replacing a link would silently drop it, writing through it would write elsewhere: neither is asked for.
        raise SpecplanError(f"{label}: is a symbolic link; give the file it points to, or another name")
    if os.path.lexists(target):
        st = os.lstat(target)
        if (kind := _kind(st.st_mode)) is not None:
            raise SpecplanError(f"{label}: is {kind}; specplan writes only regular files")
        if not force:
            raise SpecplanError(f"{label}: exists; pass --force to overwrite it")
    parent = os.path.dirname(target)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise SpecplanError(f"{label}: {parent} is not a folder")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    # The atomic write first creates ".NAME.XXXXXXXX.tmp" beside the file: 14 bytes more than NAME.
    longest = name_max - _TEMP_NAME_EXTRA
    if len(os.path.basename(target).encode("utf-8", "surrogateescape")) > longest:
        raise SpecplanError(f"{what} {shown(path)}: the file name is longer than the {longest} bytes this folder allows")


def check_strings(doc: Any, label: str) -> None:
    """Refuse a parsed document any of whose strings (keys too) holds control characters or newlines.

    For files whose every string is a name or a one-line note (calibration files): what they
    say reaches tables, YAML and shell scripts. Iterative: the document may be deep.
    """
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if (bad := _bad_char(item)) is not None:
                raise InputFileError(f"{label}: the text {shown(item)} contains {bad}")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
