"""Start and stop the real llama-server from the command line ``specplan export --server llamacpp`` writes.

Shared by tests/test_real_llamacpp.py and tests/test_real_server_probe.py: the server runs on
127.0.0.1 and a free port, every wait is bounded, and it is stopped by its own PID (the exported
script ends in ``exec llama-server``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from planner.cli import main
from tests.real_llamacpp.models import Pair

__all__ = ["free_port", "get_json", "post_json", "stop", "wait_healthy", "version_line", "export_script", "without_draft",
           "serving"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout_s: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        return json.loads(r.read())


def post_json(url: str, body: dict, timeout_s: float) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return json.loads(r.read())


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def wait_healthy(proc: subprocess.Popen, port: int, log: Path, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama-server exited with {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            if get_json(f"http://127.0.0.1:{port}/health", 2).get("status") == "ok":
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"llama-server not healthy after {limit_s} s: {log.read_text(errors='replace')[-3000:]}")


def version_line(llama_bin: Path) -> str:
    """llama-server's own --version line (``version: 0.5.0-dev (build 11312, commit 0c1e57098)``)."""
    done = subprocess.run([str(llama_bin / "llama-server"), "--version"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", timeout=30, check=False)
    return next(line for line in done.stdout.splitlines() if line.startswith("version:"))


def export_script(runner, models: Pair, gpu: str, version: str, out: Path, *, context: int, k: int, batch: int = 1,
                  name: str = "llamacpp-serve.sh", extra: Sequence[str] = ()) -> Path:
    """specplan export for the pair, for the build's own release line."""
    result = runner.invoke(main, [
        "export", "--server", "llamacpp", "--target", str(models.target_dir), "--draft", str(models.draft_dir),
        "--gpu", gpu, "--precision", "q8_0", "--context", str(context), "--batch", str(batch), "--k", str(k),
        "--target-path", str(models.target_gguf), "--draft-path", str(models.draft_gguf), "--server-version", version,
        "-o", str(out / name), *extra])
    assert result.exit_code == 0, result.output + result.stderr
    return out / name


def without_draft(script: Path, name: str) -> Path:
    """The exported script with its speculative flags (``--spec-*`` lines of the exec) dropped: the target alone.

    specplan exports only speculative plans, so the baseline server is the same command line minus the
    draft: same -c, -np, -ngl, same binary.
    """
    lines = script.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("exec llama-server"))
    kept = lines[:start + 1] + [line for line in lines[start + 1:] if "--spec-" not in line]
    kept[-1] = kept[-1].rstrip(" \\")
    out = script.with_name(name)
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out


@contextmanager
def serving(script: Path, llama_bin: Path, folder: Path, log_name: str = "server.log", threads: int = 2,
            env_extra: dict[str, str] | None = None) -> Iterator[tuple[int, subprocess.Popen, Path]]:
    """The exported script under bash on 127.0.0.1 and a free port: yields (port, process, log); stops it after.

    ``env_extra``: more LLAMA_ARG_* settings (llama-server reads each flag from its variable too).
    """
    port = free_port()
    log = folder / log_name
    env = {**os.environ, "PATH": f"{llama_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "LLAMA_ARG_HOST": "127.0.0.1", "LLAMA_ARG_PORT": str(port), "LLAMA_ARG_THREADS": str(threads),
           **(env_extra or {})}
    with log.open("wb") as sink:
        # The script ends in `exec llama-server`, so this PID is the server's.
        proc = subprocess.Popen(["bash", str(script)], stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=folder)
    try:
        wait_healthy(proc, port, log)
        yield port, proc, log
    finally:
        stop(proc)
