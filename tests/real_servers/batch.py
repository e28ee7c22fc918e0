"""Record what exported ``-serve.sh`` scripts pass to the server command; check them all in one process.

``record_script`` runs a script under bash with a stand-in for the server command (``vllm``;
``python3`` for ``python3 -m sglang.launch_server``) that writes down its argv and the
environment the script exported, instead of starting anything. ``check_records`` then hands
every record of one release to replay.py inside that release's venv, which runs the same
checker (check_vllm.py / check_sglang.py) on each, in one interpreter: importing the server
is paid once per release instead of once per file.

vLLM's checks inspect each model class in a subprocess (vllm/model_executor/models/
registry.py, ``_run_in_subprocess``), and from the 0.1x releases on keep what they learn in
``$VLLM_CACHE_ROOT/modelinfos`` keyed by the model file's hash, as on a user's machine; that
cache is kept inside the release's venv (``vllm-cache``, gone when the venv is rebuilt), so later
runs skip those imports.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.real_servers.harness import CHECK_TIMEOUT_S, CHECKERS, Release, checker_env, venv_dir

__all__ = ["Exported", "record_script", "check_records"]

@dataclass
class Exported:
    """One export: exit code, stderr, the YAML written, its record, and the checker's verdict (filled later)."""

    code: int
    stderr: str
    cfg: dict | None = None
    record: dict | None = None
    verdict: dict | None = None
    newest: Exported | None = None  # the newest release's export, where this release's was refused
    head_path: str | None = None  # a local head folder given (--head-path or --head)


_SHELL_OWN = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})  # set by bash itself, not by the script
_COMMAND = {"vllm": "vllm", "sglang": "python3"}


def record_script(script: Path, server: str, work: Path) -> dict:
    """{"argv": what the script passes to the server's entry point, "env": the variables it exported}."""
    bindir = work / "record-bin"
    bindir.mkdir(parents=True, exist_ok=True)
    stub = bindir / _COMMAND[server]
    stub.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$ARGV_OUT"\nenv -0 > "$ENV_OUT"\n', encoding="utf-8")
    stub.chmod(0o755)
    argv_out, env_out = work / "argv.bin", work / "env.bin"
    base = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8",
            "ARGV_OUT": str(argv_out), "ENV_OUT": str(env_out)}
    proc = subprocess.run(["bash", str(script)], env=base, cwd=work, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{script} failed under bash: {proc.stderr}"
    argv = argv_out.read_bytes().decode().split("\0")[:-1]
    if server == "sglang":
        assert argv[:2] == ["-m", "sglang.launch_server"], f"not an SGLang start: python3 {argv}"
        argv = argv[2:]
    seen = dict(row.split("=", 1) for row in env_out.read_bytes().decode().split("\0") if "=" in row)
    exported = {k: v for k, v in seen.items() if base.get(k) != v and k not in _SHELL_OWN}
    return {"argv": argv, "env": exported}


def check_records(release: Release, python: Path, records: list[dict], hub: Path, work: Path) -> list[dict]:
    """The checker's verdict for each record (same order), all run in one process of ``release``'s venv."""
    work.mkdir(parents=True, exist_ok=True)
    listing = work / f"records-{release.name}.json"
    listing.write_text(json.dumps(records), encoding="utf-8")
    env = checker_env(work / "bin", hub, work, gpus=1)  # each record sets its own SPECPLAN_SIMULATED_GPUS
    if release.server == "vllm":
        env["VLLM_CACHE_ROOT"] = str(venv_dir() / release.name / "vllm-cache")
    proc = subprocess.run([str(python), str(CHECKERS / "replay.py"), release.server, str(listing)], env=env,
                          cwd=work, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"replay failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    verdicts = json.loads(lines[-1])
    assert len(verdicts) == len(records)
    return verdicts
