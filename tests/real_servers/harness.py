"""Find the server venvs and run an exported ``-serve.sh`` against a server's own start-up code.

The script runs under bash exactly as a user would run it, with a stand-in for the server's
command first on PATH (``vllm``; ``python3`` for ``python3 -m sglang.launch_server``) that
hands the argv the script built - and the environment it exported - to the checker inside
the server's venv. So what is checked is the command line the user gets, not a re-reading
of the YAML.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "REQUIREMENTS", "CHECKERS", "CHECK_TIMEOUT_S", "Release", "releases", "find_venv", "absent",
           "venv_python", "checker_env", "run_serve_script", "llamacpp_argv", "llamacpp_source"]

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / ".ci" / "server-venvs"
CHECKERS = Path(__file__).resolve().parent
ENV_VAR = "SPECPLAN_SERVER_VENVS"
CHECK_TIMEOUT_S = 900  # importing vLLM on a loaded 2-core machine takes minutes; a hang must still end


@dataclass(frozen=True)
class Release:
    """One server release with a requirement file in .ci/server-venvs (``vllm-0.33.0.txt``)."""

    server: str
    version: str

    @property
    def name(self) -> str:
        return f"{self.server}-{self.version}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def releases(server: str) -> list[Release]:
    """The releases CI checks for ``server``, newest first."""
    found = [Release(server, p.stem.split("-", 1)[1]) for p in REQUIREMENTS.glob(f"{server}-*.txt")]
    return sorted(found, key=lambda r: _version_key(r.version), reverse=True)


def venv_dir() -> Path:
    """Where .ci/server_venvs.sh put the venvs: $SPECPLAN_SERVER_VENVS, else its default folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "specplan" / "server-venvs"


def find_venv(release: Release) -> tuple[Path | None, str]:
    """(the venv's python, "") when a finished venv matches the requirement file, else (None, why not)."""
    venv = venv_dir() / release.name
    wanted = (REQUIREMENTS / f"{release.name}.txt").read_bytes()
    if not (venv / ".complete").is_file():
        return None, f"no venv for {release.name} under {venv_dir()} (run `bash .ci/server_venvs.sh`, set {ENV_VAR})"
    if (venv / "specplan-requirements.txt").read_bytes() != wanted:
        return None, f"{venv} was built from another {release.name}.txt (rerun `bash .ci/server_venvs.sh`)"
    return venv / "bin" / "python", ""


def absent(why: str) -> None:
    """A missing server venv or source: a failure under CI (which builds them), a skip elsewhere."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def venv_python(release: Release) -> Path:
    """The python of ``release``'s venv, or absent() with the reason it is not there."""
    python, why = find_venv(release)
    if python is None:
        absent(why)
    assert python is not None
    return python


def _stub(bindir: Path, server: str, python: Path) -> None:
    """The stand-in command the exported script execs."""
    check = shlex.quote(str(CHECKERS / f"check_{server}.py"))
    py = shlex.quote(str(python))
    if server == "vllm":
        name, body = "vllm", f'exec {py} {check} "$@"\n'
    else:
        name = "python3"
        body = (f'if [ "$1" = -m ] && [ "$2" = sglang.launch_server ]; then shift 2; exec {py} {check} "$@"; fi\n'
                'echo "python3 stand-in: not a server start: $*" >&2; exit 97\n')
    stub = bindir / name
    stub.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    stub.chmod(0o755)


def checker_env(bindir: Path, hub: Path, work: Path, gpus: int) -> dict[str, str]:
    """The environment a checker runs in: offline Hub cache ``hub``, a HOME under ``work``, no GPU."""
    home = work / "home"
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
        "LANG": "C.UTF-8", "TMPDIR": str(work),
        # every read of a model id is answered from the offline cache the test wrote
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "HF_HOME": str(home / "hf"),
        "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "CUDA_VISIBLE_DEVICES": "",
        "PYTHONDONTWRITEBYTECODE": "1", "SPECPLAN_SIMULATED_GPUS": str(gpus),
    }


def run_serve_script(script: Path, server: str, python: Path, hub: Path, work: Path, gpus: int) -> dict:
    """Run ``bash script`` with the server's stand-in on PATH; the checker's JSON verdict.

    ``gpus``: how many GPUs the plan has (SGLang's checker answers its device probes for them).
    """
    bindir = work / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    _stub(bindir, server, python)
    env = checker_env(bindir, hub, work, gpus)
    proc = subprocess.run(["bash", str(script)], env=env, cwd=work, capture_output=True, text=True,
                          timeout=CHECK_TIMEOUT_S)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, 1) or not lines:
        raise AssertionError(f"checker failed (exit {proc.returncode}) on {script}:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return json.loads(lines[-1])


def llamacpp_source(version: str) -> Path | None:
    """The cached folder with common/arg.cpp and CHANGELOG.md of llama-cpp-python ``version``, if built."""
    folder = venv_dir() / "llamacpp-src" / version
    return folder if (folder / ".complete").is_file() else None


def llamacpp_argv(script: Path, work: Path) -> list[str]:
    """The argv an exported llama.cpp -serve.sh passes to llama-server (run under bash, stand-in on PATH)."""
    bindir = work / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    stub = bindir / "llama-server"
    stub.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$ARGV_OUT"\n', encoding="utf-8")
    stub.chmod(0o755)
    out = work / "argv.bin"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(work), "ARGV_OUT": str(out), "LANG": "C.UTF-8"}
    proc = subprocess.run(["bash", str(script)], env=env, cwd=work, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes().decode().split("\0")[:-1]
