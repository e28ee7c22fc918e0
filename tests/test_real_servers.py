"""specplan's vLLM and SGLang exports, run through those servers' own start-up code.

For each plan below, each server, and each release with a venv built by
``bash .ci/server_venvs.sh`` (newest and an older line; .ci/server-venvs/*.txt), the test runs
``specplan export --server-version RELEASE``, then the exported ``-serve.sh`` under bash with a
stand-in for the server command that hands the argv to the real server's parser and config
classes (tests/real_servers/check_*.py, inside that release's CPU-only venv). The models'
config.json files come from an offline Hub cache written from specplan's catalogue.

Every export of one release is recorded (what its -serve.sh passes) and checked in one process of
that release's venv (tests/real_servers/batch.py), so the server's import is paid once per release.
The server must accept the file (PASS) and hold the values specplan wrote. Where specplan
refuses the plan for a release instead, the refusal must be one line with exit 2, and it
must be needed: the release's own parser must reject what specplan writes for the newest
release (else the refusal turns away a configuration the server takes).

llama.cpp is C++: its exports are checked against its own argument definitions instead,
common/arg.cpp of a llama.cpp release per line (vendored by the llama-cpp-python sdist, kept
by .ci/server_venvs.sh): every flag the exported script passes and every variable of its
.env file must be a llama-server option that is not a removed one, and so must every flag
and variable planner/exports/server_args/llamacpp.yaml lists for that line.

Without the venvs (or sources) the tests skip, except under CI=true, where their absence fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from tests.real_servers.batch import Exported, check_records, record_script
from tests.real_servers.harness import (ROOT, Release, absent, find_venv, venv_python, llamacpp_argv, llamacpp_source,
                                        releases)
from tests.real_servers.hub import add_model
from tests.real_servers.llamacpp_args import server_options

pytestmark = pytest.mark.real_servers

LLAMA = ("--target", "meta-llama/Llama-3.1-70B-Instruct", "--draft", "meta-llama/Llama-3.2-1B-Instruct")
QWEN = ("--target", "Qwen/Qwen2.5-32B-Instruct", "--draft", "Qwen/Qwen2.5-0.5B-Instruct")  # 152064 vs 151936 rows
AWQ_DRAFT = "specplan-test/Llama-3.2-1B-Instruct-AWQ"  # a name for a pre-quantized checkpoint; offline only


@dataclass(frozen=True)
class Case:
    """A plan to export: specplan flags, and the pre-quantized checkpoints it names (id -> (base, format))."""

    flags: tuple[str, ...]
    checkpoints: dict[str, tuple[str, str]] = field(default_factory=dict)


CASES = {
    "llama70b-1b-tp4": Case((*LLAMA, "--gpu", "h100-sxm", "--gpus", "4")),
    "qwen32b-0.5b-vocab": Case((*QWEN, "--gpu", "h100-sxm", "--gpus", "1")),
    "qwen32b-0.5b-tp4-draft-tp1": Case((*QWEN, "--gpu", "h100-sxm", "--gpus", "4")),
    "llama-fp8-draft": Case((*LLAMA, "--gpu", "h100-sxm", "--gpus", "4", "--draft-precision", "fp8")),
    "llama-awq-draft": Case((*LLAMA, "--gpu", "h100-sxm", "--gpus", "4", "--draft-precision", "int4-awq",
                             "--draft-path", AWQ_DRAFT),
                            {AWQ_DRAFT: ("meta-llama/Llama-3.2-1B-Instruct", "int4-awq")}),
}
SERVERS = ("vllm", "sglang")
PARAMS = [pytest.param(case, release, id=f"{case}-{release.name}")
          for case in CASES for server in SERVERS for release in releases(server)]



def _vllm_spec(cfg: dict) -> dict:
    spec = cfg.get("speculative-config")
    return json.loads(spec) if isinstance(spec, str) else spec or {}


def _model_ids(server: str, cfg: dict) -> list[str]:
    if server == "vllm":
        return [cfg["model"], _vllm_spec(cfg).get("model") or cfg.get("speculative-model")]
    return [cfg["model-path"], cfg["speculative-draft-model-path"]]


def _break(server: str, cfg: dict) -> dict:
    """The export with one key no release of the server has (the negative control)."""
    if server == "vllm":
        return {**cfg, "speculative-config": json.dumps({**_vllm_spec(cfg), "draft_bogus_setting": 1})}
    return {**cfg, "speculative-bogus-setting": 1}


def _export(runner, case: Case, release: Release, version: str, out: Path, hub: Path,
            broken: bool = False) -> Exported:
    """Export the plan for ``version``; when it is written, record what its -serve.sh runs (and add its
    models to the offline Hub). ``broken``: the file gets one unknown key before the script is recorded."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{release.server}.yaml"
    result = runner.invoke(main, ["export", "--server", release.server, "--server-version", version,
                                  *case.flags, "-o", str(path)])
    if result.exit_code != 0:
        return Exported(result.exit_code, result.stderr)
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for repo_id in _model_ids(release.server, cfg):
        base, fmt = case.checkpoints.get(repo_id, (repo_id, None))
        add_model(hub, repo_id, base, fmt)
    if broken:
        path.write_text(yaml.safe_dump(_break(release.server, cfg)), encoding="utf-8")
    record = record_script(out / f"{release.server}-serve.sh", release.server, out)
    record["env"]["SPECPLAN_SIMULATED_GPUS"] = case.flags[case.flags.index("--gpus") + 1]
    return Exported(0, result.stderr, cfg, record)


_BROKEN = "llama70b-1b-tp4"  # the plan the negative control breaks


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, dict[str, Exported]]:
    """release name -> case (and "broken") -> its export and verdict; one checker process per release
    (tests/real_servers/batch.py), so importing the server is paid once per release, not per file."""
    from click.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("servers")
    hub = root / "hub"
    results: dict[str, dict[str, Exported]] = {}
    for server in SERVERS:
        newest = releases(server)[0]
        for release in releases(server):
            python, _ = find_venv(release)
            if python is None:
                continue  # each test says why (venv_python)
            work = root / release.name
            done = {name: _export(runner, case, release, release.version, work / name, hub)
                    for name, case in CASES.items()}
            for name, exp in done.items():
                if exp.code != 0 and release != newest:
                    exp.newest = _export(runner, CASES[name], release, newest.version, work / f"{name}-newest", hub)
            done["broken"] = _export(runner, CASES[_BROKEN], release, release.version, work / "broken", hub, True)
            todo = [e for exp in done.values() for e in (exp, exp.newest) if e is not None and e.record]
            for e, verdict in zip(todo, check_records(release, python, [e.record for e in todo], hub, work)):
                e.verdict = verdict
            results[release.name] = done
    return results


def _expected_facts(server: str, cfg: dict) -> dict:
    """What the server must hold after reading the file: the values specplan wrote."""
    if server == "vllm":
        spec = _vllm_spec(cfg)
        pairs = {"tensor_parallel_size": cfg.get("tensor-parallel-size"), "max_model_len": cfg.get("max-model-len"),
                 "max_num_seqs": cfg.get("max-num-seqs"), "gpu_memory_utilization": cfg.get("gpu-memory-utilization"),
                 "method": spec.get("method"), "num_speculative_tokens": spec.get("num_speculative_tokens"),
                 "draft_model": spec.get("model"), "draft_tensor_parallel_size": spec.get("draft_tensor_parallel_size"),
                 "draft_max_model_len": spec.get("max_model_len"), "draft_quantization": spec.get("quantization")}
        return {k: v for k, v in pairs.items() if v is not None}
    keys = ("tp-size", "context-length", "max-running-requests", "mem-fraction-static", "speculative-algorithm",
            "speculative-draft-model-path", "speculative-num-steps", "speculative-eagle-topk",
            "speculative-num-draft-tokens", "speculative-draft-model-quantization")
    return {key.replace("-", "_"): cfg[key] for key in keys if key in cfg}


@pytest.mark.parametrize(("case_name", "release"), PARAMS)
def test_server_accepts_export(case_name: str, release: Release, checked) -> None:
    venv_python(release)
    exp = checked[release.name][case_name]
    if exp.code == 0:
        verdict = exp.verdict
        assert verdict is not None and verdict["result"] == "PASS", (
            f"{release.name} rejected the export at {verdict and verdict['step']}: {verdict and verdict['message']}")
        facts = verdict["facts"]
        wrong = {k: (v, facts.get(k)) for k, v in _expected_facts(release.server, exp.cfg).items() if facts.get(k) != v}
        assert not wrong, f"{release.name} holds other values than the file says (file, server): {wrong}"
        return
    stderr = exp.stderr
    assert exp.code == 2 and stderr.startswith("specplan: error: ") and stderr.count("\n") == 1, (exp.code, stderr)
    if exp.newest is None or exp.newest.code != 0:
        return  # refused on every line: the plan itself is refused, with its reason
    assert exp.newest.verdict is not None and exp.newest.verdict["result"] == "REJECTED", (
        f"specplan refuses this plan for {release.name} ({stderr.strip()}), but {release.name} accepts the "
        f"{releases(release.server)[0].name} export")


# llama.cpp line -> (llama-cpp-python sdist, the llama.cpp commit its CHANGELOG.md names, --server-version)
LLAMACPP_SOURCES = {
    "spec-draft": ("0.3.36", "0c1e57098", "b11312"),  # llama-server b11312 reports commit 0c1e570
    "classic": ("0.3.16", "4227c9be4268ac844921b90f31595f81236bd317", "classic"),  # build number not in the sdist
}
LLAMACPP_PLANS = {
    "llama8b-1b": ("--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft", "meta-llama/Llama-3.2-1B-Instruct",
                   "--gpu", "rtx-4090"),
    "llama8b-1b-q8-kv": ("--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft", "meta-llama/Llama-3.2-1B-Instruct",
                         "--gpu", "rtx-4090", "--kv-precision", "q8_0"),
}


def _llamacpp_options(line: str):
    version, commit, _ = LLAMACPP_SOURCES[line]
    folder = llamacpp_source(version)
    if folder is None:
        absent(f"no llama.cpp source llama-cpp-python {version} (run `bash .ci/server_venvs.sh`)")
    changelog = (folder / "CHANGELOG.md").read_text(encoding="utf-8")
    section = changelog.split(f"## [{version}]", 1)[1].split("\n## [", 1)[0]
    assert f"llama.cpp@{commit}" in section, f"llama-cpp-python {version} vendors another llama.cpp than {commit}"
    return server_options((folder / "arg.cpp").read_text(encoding="utf-8"))


def _written(output: str, suffix: str) -> Path:
    """The file ending in ``suffix`` that export's "wrote A, B" line names (-o names moved between releases)."""
    line = next(row for row in output.splitlines() if row.startswith("wrote "))
    return next(Path(p) for p in line[len("wrote "):].split(", ") if p.endswith(suffix))


def _is_flag(word: str) -> bool:
    return word[:1] == "-" and word.lstrip("-")[:1].isalpha()


@pytest.mark.parametrize("plan", LLAMACPP_PLANS)
@pytest.mark.parametrize("line", LLAMACPP_SOURCES)
def test_llamacpp_export_uses_only_live_options(line: str, plan: str, runner, tmp_path: Path) -> None:
    options = _llamacpp_options(line)
    result = runner.invoke(main, ["export", "--server", "llamacpp", "--server-version", LLAMACPP_SOURCES[line][2],
                                  *LLAMACPP_PLANS[plan], "-o", str(tmp_path / "llamacpp-serve.sh")])
    assert result.exit_code == 0, result.output
    flags = {w for w in llamacpp_argv(_written(result.output, ".sh"), tmp_path) if _is_flag(w)}
    env = {row.split("=", 1)[0] for row in _written(result.output, ".env").read_text(encoding="utf-8").splitlines()
           if row and not row.startswith("#")}
    assert not flags - options.flags, f"not llama-server options: {sorted(flags - options.flags)}"
    assert not flags & options.removed, f"removed options: {sorted(flags & options.removed)}"
    assert not env - options.env, f"not llama-server variables: {sorted(env - options.env)}"


@pytest.mark.parametrize("line", LLAMACPP_SOURCES)
def test_llamacpp_data_matches_arg_cpp(line: str) -> None:
    options = _llamacpp_options(line)
    data = yaml.safe_load((ROOT / "planner" / "exports" / "server_args" / "llamacpp.yaml").read_text(encoding="utf-8"))
    entry = next(e for e in data["lines"] if e["name"] == line)
    flags, env = set(entry["cli_flags"]), set(entry["env"])
    assert not flags - options.flags, f"{line}: listed but not in arg.cpp: {sorted(flags - options.flags)}"
    assert not flags & options.removed, f"{line}: listed but removed in arg.cpp: {sorted(flags & options.removed)}"
    assert not env - options.env, f"{line}: variables not in arg.cpp: {sorted(env - options.env)}"


@pytest.mark.parametrize("release", [r for server in SERVERS for r in releases(server)], ids=lambda r: r.name)
def test_server_rejects_a_broken_export(release: Release, checked) -> None:
    """The harness can fail: the same export with one unknown key is REJECTED by the server itself."""
    venv_python(release)
    exp = checked[release.name]["broken"]
    assert exp.code == 0, exp.stderr
    assert exp.verdict is not None and exp.verdict["result"] == "REJECTED" and "bogus" in exp.verdict["message"], \
        exp.verdict
