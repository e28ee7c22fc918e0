"""Write files atomically, alone or as a set: a reader sees the old files or all the new ones.

Guarantee of ``write_files_atomic`` (and ``write_text_atomic``, a set of one):

* Before anything is written, every target is checked: without ``force`` an existing
  target is refused; with ``force`` a target that is not a regular file (symlink, FIFO,
  device, folder) is refused; a parent that is not a folder is refused. Nothing is
  created when a check fails.
* Each file is written to a temporary file in its own folder and fsynced. An error,
  SIGINT or SIGTERM while the temporaries are written removes them all; no target is
  touched yet.
* The temporaries are then renamed over the targets with SIGINT and SIGTERM blocked (a
  signal arriving then is delivered after the last rename). If a rename fails, the
  files renamed so far are rolled back: a target that did not exist before is removed,
  one that did is restored from a hard link taken before the renames (where the file
  system offers hard links; otherwise the new file stays). The folder is fsynced.
* Not covered: SIGKILL or a power loss during the write (temporaries named
  ``.NAME.*.tmp`` may remain), and another process changing the targets meanwhile.

``SPECPLAN_WRITE_DELAY_S`` (a number of seconds) pauses after the temporaries are
written and before the renames: a fault hook for the tests that send a real signal
mid-write. It is read only here and does nothing when unset.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from planner.errors import SpecplanError

__all__ = ["write_text_atomic", "write_files_atomic", "check_target", "DELAY_ENV"]

DELAY_ENV = "SPECPLAN_WRITE_DELAY_S"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TEMP_PREFIX_CHARS = 80  # keep the temporary's name short enough even for a long target name


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _os_error(path: Path, exc: OSError) -> SpecplanError:
    return SpecplanError(f"cannot write {path}: {exc.strerror or exc}")


def check_target(path: Path, force: bool) -> bool:
    """Refuse a target that may not be written; True when it exists (a regular file, with force)."""
    parent = path.parent
    try:
        for folder in (parent, *parent.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise SpecplanError(f"cannot write {path}: {folder} is not a folder")
                break
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _os_error(path, exc) from None
    if not force:
        raise SpecplanError(f"{path} exists; pass --force to overwrite it")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a symlink" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode)
                else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or special file")
        raise SpecplanError(f"{path} is {kind}, not a regular file: --force replaces only regular files")
    return True


@dataclass
class _Pending:
    target: Path
    text: str
    mode: int
    existed: bool
    temp: Path | None = None
    backup: Path | None = None
    renamed: bool = False


class _Interrupted(BaseException):
    """SIGTERM while the temporaries are written: unwinds through the clean-up like KeyboardInterrupt."""


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Interrupted(signum)


def _install_handlers() -> dict[int, object] | None:
    """SIGINT / SIGTERM raise in the main thread from now on; the handlers they had (None: not main)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {s: signal.signal(s, _raise_interrupt) for s in _SIGNALS}


def _restore_handlers(previous: dict[int, object] | None) -> None:
    for s, handler in (previous or {}).items():
        signal.signal(s, handler)  # type: ignore[arg-type]


def _fault_delay() -> None:
    raw = os.environ.get(DELAY_ENV)
    if raw:
        try:
            time.sleep(max(0.0, float(raw)))
        except ValueError:
            pass


def _write_temp(p: _Pending) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.target.name[:_TEMP_PREFIX_CHARS]}.", suffix=".tmp", dir=p.target.parent)
    except OSError as exc:  # report the file the user named, not the temporary's random name
        raise OSError(exc.errno, exc.strerror, str(p.target)) from None
    p.temp = Path(tmp)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), p.mode)  # mkstemp makes files 0600
        f.write(p.text)
        f.flush()
        os.fsync(f.fileno())


def _backup(p: _Pending) -> None:
    """A hard link to the file about to be replaced, so a failed set can put it back."""
    if not p.existed:
        return
    name = tempfile.mktemp(prefix=f".{p.target.name[:_TEMP_PREFIX_CHARS]}.", suffix=".bak", dir=p.target.parent)
    try:
        os.link(p.target, name, follow_symlinks=False)
        p.backup = Path(name)
    except OSError:
        p.backup = None


def _roll_back(pending: list[_Pending]) -> None:
    for p in pending:
        with contextlib.suppress(OSError):
            if p.renamed and p.backup is not None:
                os.replace(p.backup, p.target)
                p.backup = None
            elif p.renamed and not p.existed:
                p.target.unlink()
        for leftover in (p.temp if not p.renamed else None, p.backup):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink()


def _fsync_dirs(folders: set[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _mode_for(path: Path, modes: Mapping[str, int] | None, exact: bool) -> int:
    """The permission bits of a new file: as open(path, mode) would make them (``exact``: no umask)."""
    mode = (modes or {}).get(path.name, 0o666)
    return mode if exact else mode & ~_umask()


def _rename_all(pending: list[_Pending]) -> None:
    """Rename every temporary over its target; on an error put the earlier ones back."""
    try:
        for p in pending:
            _backup(p)
            os.replace(p.temp, p.target)  # type: ignore[arg-type]
            p.renamed = True
    except BaseException:
        _roll_back(pending)
        raise
    for p in pending:
        if p.backup is not None:
            with contextlib.suppress(OSError):
                p.backup.unlink()
    _fsync_dirs({p.target.parent for p in pending})


def write_files_atomic(files: Mapping[str | os.PathLike[str], str], force: bool = False,
                       modes: Mapping[str, int] | None = None, exact_modes: bool = False) -> list[Path]:
    """Write every (path -> text) as one set, all or nothing (see the module docstring).

    ``modes`` maps a file name to the mode open() is asked for (default 0666; 0777 for a
    script), less the umask unless ``exact_modes``.
    """
    pending = []
    for raw, text in files.items():
        target = Path(raw)
        existed = check_target(target, force)
        pending.append(_Pending(target=target, text=text, mode=_mode_for(target, modes, exact_modes), existed=existed))
    try:
        for p in pending:
            p.target.parent.mkdir(parents=True, exist_ok=True)
        previous = _install_handlers()
        try:
            try:
                for p in pending:
                    _write_temp(p)
                _fault_delay()
            except BaseException:
                _roll_back(pending)
                raise
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
            try:
                _rename_all(pending)
            finally:
                # the old handlers first: a signal held back during the renames finds the set complete
                _restore_handlers(previous)
                previous = None
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        finally:
            _restore_handlers(previous)
    except _Interrupted as exc:
        print("specplan: terminated while writing; no file was written", file=sys.stderr)
        raise SystemExit(128 + int(exc.args[0])) from None
    except OSError as exc:
        raise _os_error(_target_of(exc, pending), exc) from None
    return [p.target for p in pending]


def _target_of(exc: OSError, pending: list[_Pending]) -> Path:
    """The target an OSError is about (a temporary's error is its target's)."""
    where = str(exc.filename) if exc.filename else None
    for p in pending:
        if where in (str(p.temp), str(p.target)):
            return p.target
    return Path(where) if where else pending[0].target


def write_text_atomic(path: str | Path, text: str, force: bool = True) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    With ``force`` False an existing file is refused rather than replaced; with it, only
    a regular file is replaced. A replaced file keeps its permission bits.
    """
    target = Path(path)
    modes = None
    with contextlib.suppress(OSError):
        info = os.lstat(target)
        if stat.S_ISREG(info.st_mode):
            modes = {target.name: stat.S_IMODE(info.st_mode)}
    (written,) = write_files_atomic({target: text}, force=force, modes=modes, exact_modes=modes is not None)
    return written
