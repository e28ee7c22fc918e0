"""Atomic writes: one file or a set, all or nothing; --force only over regular files; no temporary
survives an error, SIGINT or SIGTERM (sent for real to a subprocess held mid-write by the fault hook)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import planner.atomic as atomic
from planner.atomic import DELAY_ENV, write_files_atomic, write_text_atomic
from planner.errors import SpecplanError

REPO = Path(__file__).resolve().parents[1]


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.suffix in (".tmp", ".bak"))


def test_a_set_is_written_with_its_modes_and_nothing_else(tmp_path):
    written = write_files_atomic({tmp_path / "a.yaml": "a: 1\n", tmp_path / "a-serve.sh": "#!/bin/sh\n"},
                                 modes={"a-serve.sh": 0o777})
    assert [p.name for p in written] == ["a.yaml", "a-serve.sh"]
    assert (tmp_path / "a.yaml").read_text() == "a: 1\n"
    assert os.access(tmp_path / "a-serve.sh", os.X_OK) and not os.access(tmp_path / "a.yaml", os.X_OK)
    assert _temps(tmp_path) == []


def test_an_existing_file_refuses_the_whole_set_without_force(tmp_path):
    (tmp_path / "b.env").write_text("mine\n")
    with pytest.raises(SpecplanError, match="--force"):
        write_files_atomic({tmp_path / "b.sh": "new\n", tmp_path / "b.env": "new\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.env"] and (tmp_path / "b.env").read_text() == "mine\n"
    write_files_atomic({tmp_path / "b.sh": "new\n", tmp_path / "b.env": "new\n"}, force=True)
    assert (tmp_path / "b.env").read_text() == "new\n"


def _special_files(tmp_path: Path) -> dict[str, Path]:
    real = tmp_path / "real.txt"
    real.write_text("real\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    out = {"symlink": link, "FIFO": fifo, "folder": folder}
    try:
        dev = tmp_path / "null.yaml"
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        out["device"] = dev
    except (PermissionError, OSError):
        pass  # not root: the other kinds still run
    return out


def test_force_never_replaces_a_file_that_is_not_regular(tmp_path):
    for kind, path in _special_files(tmp_path).items():
        before = os.lstat(path)
        with pytest.raises(SpecplanError, match="not a regular file") as err:
            write_files_atomic({tmp_path / "ok.sh": "x\n", path: "x\n"}, force=True)
        assert "\n" not in str(err.value), kind
        with pytest.raises(SpecplanError, match="not a regular file"):
            write_text_atomic(path, "x\n", force=True)
        after = os.lstat(path)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), kind
        assert not (tmp_path / "ok.sh").exists()
    assert (tmp_path / "real.txt").read_text() == "real\n"
    assert _temps(tmp_path) == []


def test_a_parent_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SpecplanError, match="is not a folder"):
        write_files_atomic({tmp_path / "afile" / "v.yaml": "x\n"})
    with pytest.raises(SpecplanError, match="is not a folder"):
        write_files_atomic({tmp_path / "afile" / "deeper" / "v.yaml": "x\n"})


def test_a_failed_rename_rolls_the_set_back(tmp_path, monkeypatch):
    old = tmp_path / "c.yaml"
    old.write_text("old\n")
    real_replace, calls = os.replace, []

    def replace_failing_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_failing_second)
    with pytest.raises(SpecplanError, match="No space left"):
        write_files_atomic({old: "new\n", tmp_path / "c-serve.sh": "new\n"}, force=True)
    monkeypatch.undo()
    assert old.read_text() == "old\n"  # restored from its hard link
    assert not (tmp_path / "c-serve.sh").exists() and _temps(tmp_path) == []


def test_a_failed_write_leaves_no_temporary(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync_failing_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync_failing_second)
    with pytest.raises(SpecplanError, match="Input/output error"):
        write_files_atomic({tmp_path / "d.yaml": "x\n", tmp_path / "d.env": "y\n"})
    assert list(tmp_path.iterdir()) == []


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "r.html"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomic(path, "new", force=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "new"


# --- real signals mid-write --------------------------------------------------------------------------------

_WRITER = """
import sys
from pathlib import Path
from planner.atomic import write_files_atomic
folder = Path(sys.argv[1])
write_files_atomic({folder / "e.yaml": "new\\n", folder / "e-serve.sh": "new\\n"}, force=True)
"""


def _wait_for_temps(folder: Path, proc: subprocess.Popen) -> list[str]:
    """Wait until the writer holds its temporaries (bounded; the hook keeps them there for a minute)."""
    for _ in range(1200):
        found = [n for n in _temps(folder) if n.endswith(".tmp")]
        if len(found) == 2 or proc.poll() is not None:
            return found
        time.sleep(0.05)
    return []


def _spawn(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, DELAY_ENV: "60", "PYTHONPATH": str(REPO)}
    # SIGINT must not be ignored in the child (it is when started from a backgrounded shell)
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, None)])
def test_a_signal_mid_write_removes_the_temporaries(tmp_path, sig, code):
    (tmp_path / "e.yaml").write_text("old\n")
    proc = _spawn([sys.executable, "-c", _WRITER, str(tmp_path)], tmp_path)
    assert len(_wait_for_temps(tmp_path, proc)) == 2, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and (code is None or proc.returncode == code), (proc.returncode, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.yaml"] and (tmp_path / "e.yaml").read_text() == "old\n"


def test_sigterm_during_an_export_leaves_nothing(tmp_path):
    argv = [sys.executable, "-m", "planner.cli", "export", "--server", "vllm", "--target", "llama-3.1-8b", "--draft",
            "llama-3.2-1b", "--gpu", "h100-sxm", "-o", str(tmp_path / "v.yaml")]
    proc = _spawn(argv, tmp_path)
    assert len(_wait_for_temps(tmp_path, proc)) == 2, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert list(tmp_path.iterdir()) == []
    assert err.strip().splitlines() == ["specplan: terminated while writing; no file was written"]
