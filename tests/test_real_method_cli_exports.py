"""`specplan export --method ...` end to end: the files the real CLI writes, read by vLLM's and SGLang's own start-up.

For each method each server line runs (vLLM: eagle, eagle3, mtp, ngram, suffix; SGLang: EAGLE,
EAGLE3 with a tree, NEXTN for DeepSeek-V3, NGRAM) and each release with a venv built by
``bash .ci/server_venvs.sh`` (newest and an older line), the test runs the CLI in process:
``export --server S --server-version R --method M --target ... --gpu ... -o DIR/S.yaml``, and
once per server ``recommend --method all --format json`` then ``export --from-plan``, and with a
local head folder as ``--head`` (planned from its config.json) and as ``--head-path``. The
``-serve.sh`` each export wrote runs under bash with a stand-in server command that records its
argv and environment (tests/real_servers/batch.py); every record of one release then goes
through that release's checker (tests/real_servers/check_*.py) in one process. The server must
PASS and hold the values the file says: method, head checkpoint, num_speculative_tokens,
SGLang's steps / topk / draft tokens. The heads' and targets' config.json come from the offline
Hub cache (tests/real_servers/hub.py), written for every model id the exported file names.

Where specplan refuses a method for a release, the refusal must be one line (exit 2) and needed:
the release must reject what specplan writes for the newest release. vLLM's suffix decoding is
accepted up to the import of Arctic Inference, which the venv lacks on purpose
(SpeculativeConfig._validate_suffix_decoding runs after the keys were parsed and found to be
SpeculativeConfig fields); the four suffix_decoding_* values written must be the defaults of
that release's vllm/config/speculative.py, read here from the venv's source.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.cli import main
from tests.real_servers.batch import Exported, check_records, record_script
from tests.real_servers.harness import Release, find_venv, releases, venv_python
from tests.real_servers.hub import add_head, add_model

pytestmark = pytest.mark.real_servers

LLAMA8B = ("--target", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm")
# DeepSeek-V3 (671B) in fp8 on 8 x H200, a plan that fits with SGLang's reserves too (8 x B200 in bf16 does
# not). vLLM 0.9.2 reserves 4 GiB of CPU swap per tensor-parallel rank and refuses more than the machine's
# memory, so its MTP case runs in the full matrix only, on a machine with 32 GiB or more.
DEEPSEEK = ("--target", "deepseek-ai/DeepSeek-V3", "--gpu", "h200", "--gpus", "8", "--precision", "fp8")
# config.json of the heads as published: the target's with what the head changes. EAGLE-3: one decoder
# layer, LlamaForCausalLMEagle3, draft_vocab_size 32000 (the llama3-8B-eagle3.json of the EAGLE-3 training
# recipes); EAGLE(-1): one LlamaForCausalLM layer; DeepSeek-V3's own config.json: num_nextn_predict_layers 1.
HEAD_CONFIGS: dict[str, dict[str, Any]] = {
    "eagle3": {"architectures": ["LlamaForCausalLMEagle3"], "num_hidden_layers": 1, "draft_vocab_size": 32000},
    "eagle": {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1},
}
HEAD_TARGET = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass(frozen=True)
class Case:
    flags: tuple[str, ...]  # after `export --server S --server-version R`
    plan: bool = False  # export --from-plan of `recommend --method all` with these flags


CASES = {
    "eagle3": Case(("--method", "eagle3", *LLAMA8B)),
    "eagle": Case(("--method", "eagle", *LLAMA8B)),
    "mtp": Case(("--method", "mtp", *DEEPSEEK)),
    "ngram": Case(("--method", "ngram", *LLAMA8B)),
    "suffix": Case(("--method", "suffix", *LLAMA8B)),
    "eagle3-head-path": Case(("--method", "eagle3", *LLAMA8B, "--head-path", "@HEAD_FOLDER")),
    "eagle3-head-folder": Case(("--method", "eagle3", *LLAMA8B, "--head", "@HEAD_FOLDER")),  # planned from it
    "from-plan": Case(LLAMA8B, plan=True),
}
# Each vLLM record costs seconds, and each model class its first inspection (a vLLM import in a
# subprocess, 15 s here; 0.9.2 keeps no cache of it); CI runs every case on the newest release of each
# server, the older SGLang line in full (a second a record) and, on the older vLLM line, the EAGLE-3 keys
# (its other key layout) and the suffix refusal (no model inspected). SPECPLAN_METHOD_MATRIX=full runs every
# case on every release.
_OLDER_VLLM = ("eagle3", "suffix")
# specplan refuses these on every release line of the server, with the alternatives (no SGLang suffix decoding)
REFUSED_EVERYWHERE = {("sglang", "suffix")}


def _cases(release: Release) -> list[str]:
    if os.environ.get("SPECPLAN_METHOD_MATRIX") == "full" or release.server == "sglang":
        return list(CASES)
    return list(CASES) if release == releases("vllm")[0] else list(_OLDER_VLLM)


def _spec(cfg: dict) -> dict:
    spec = cfg.get("speculative-config")
    return json.loads(spec) if isinstance(spec, str) else spec or {}


def _head(server: str, cfg: dict) -> str | None:
    return _spec(cfg).get("model") if server == "vllm" else cfg.get("speculative-draft-model-path")


def _method(server: str, cfg: dict) -> str:
    return _spec(cfg)["method"] if server == "vllm" else cfg["speculative-algorithm"]



def _export(runner, case: Case, release: Release, version: str, out: Path, head_folder: Path) -> Exported:
    out.mkdir(parents=True, exist_ok=True)
    flags = [str(head_folder) if f == "@HEAD_FOLDER" else f for f in case.flags]
    head_path = str(head_folder) if "@HEAD_FOLDER" in case.flags else None
    if case.plan:
        result = runner.invoke(main, ["recommend", *flags, "--method", "all", "--format", "json"])
        assert result.exit_code == 0, result.output
        (out / "plan.json").write_text(result.stdout, encoding="utf-8")
        flags = ["--from-plan", str(out / "plan.json")]
    result = runner.invoke(main, ["export", "--server", release.server, "--server-version", version, *flags,
                                  "-o", str(out / f"{release.server}.yaml")])
    if result.exit_code != 0:
        return Exported(result.exit_code, result.stderr, head_path=head_path)
    cfg = yaml.safe_load((out / f"{release.server}.yaml").read_text(encoding="utf-8"))
    record = record_script(out / f"{release.server}-serve.sh", release.server, out)
    record["env"]["SPECPLAN_SIMULATED_GPUS"] = str(cfg["tensor-parallel-size" if release.server == "vllm" else "tp-size"])
    return Exported(0, result.stderr, cfg, record, head_path=head_path)


def _add_configs(hub: Path, server: str, cfg: dict) -> None:
    """A config.json for every model id the file names (a local head folder already holds its own)."""
    target = cfg["model"] if server == "vllm" else cfg["model-path"]
    if "DeepSeek-V3" in target:
        add_head(hub, target, target, {"num_nextn_predict_layers": 1})
    else:
        add_model(hub, target)
    head, method = _head(server, cfg), _method(server, cfg).lower()
    if head is not None and not head.startswith("/"):
        add_head(hub, head, HEAD_TARGET, HEAD_CONFIGS["eagle" if method == "eagle" else "eagle3"])


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, dict[str, Exported]]:
    """release name -> case -> its export and verdict; one checker process per release."""
    from click.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("method-cli")
    hub = root / "hub"
    head_folder = add_head(root / "local", "local/eagle3-head", HEAD_TARGET, HEAD_CONFIGS["eagle3"])
    results: dict[str, dict[str, Exported]] = {}
    for server in ("vllm", "sglang"):
        newest = releases(server)[0]
        for release in releases(server):
            python, _ = find_venv(release)
            if python is None:
                continue
            work = root / release.name
            done: dict[str, Exported] = {}
            for name in _cases(release):
                exp = _export(runner, CASES[name], release, release.version, work / name, head_folder)
                if exp.code != 0 and release != newest:
                    exp.newest = _export(runner, CASES[name], release, newest.version, work / f"{name}-newest",
                                         head_folder)
                done[name] = exp
            todo = [e for exp in done.values() for e in (exp, exp.newest) if e is not None and e.record]
            for e in todo:
                _add_configs(hub, server, e.cfg)  # type: ignore[arg-type]
            for e, verdict in zip(todo, check_records(release, python, [e.record for e in todo], hub, work)):
                e.verdict = verdict
            results[release.name] = done
    return results


def _expected(server: str, cfg: dict) -> dict[str, Any]:
    """What the server must hold: the values the file says."""
    if server == "vllm":
        spec = _spec(cfg)
        pairs = {"tensor_parallel_size": cfg.get("tensor-parallel-size"), "max_model_len": cfg.get("max-model-len"),
                 "method": spec.get("method"), "num_speculative_tokens": spec.get("num_speculative_tokens"),
                 "draft_model": spec.get("model"), "prompt_lookup_max": spec.get("prompt_lookup_max"),
                 "prompt_lookup_min": spec.get("prompt_lookup_min")}
        return {k: v for k, v in pairs.items() if v is not None}
    names = ("tp-size", "context-length", "speculative-algorithm", "speculative-draft-model-path",
             "speculative-num-steps", "speculative-eagle-topk", "speculative-num-draft-tokens")
    facts = {n.replace("-", "_"): cfg[n] for n in names if n in cfg}
    if cfg.get("speculative-algorithm") == "NGRAM":
        facts.pop("speculative_eagle_topk", None)  # SGLang sets it to the max BFS breadth itself
    if cfg.get("speculative-algorithm") == "NEXTN":
        facts["speculative_algorithm"] = "EAGLE"  # SGLang runs NEXTN as EAGLE over the nextn layers
    return facts


def _suffix_defaults(release: Release) -> dict[str, Any]:
    """The suffix_decoding_* field defaults of SpeculativeConfig in the venv's vllm/config/speculative.py."""
    python, _ = find_venv(release)
    assert python is not None
    source = next(python.parent.parent.glob("lib/python3*/site-packages/vllm/config/speculative.py"))
    tree = ast.parse(source.read_text(encoding="utf-8"))
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "SpeculativeConfig")
    return {n.target.id: ast.literal_eval(n.value) for n in cls.body if isinstance(n, ast.AnnAssign)
            and isinstance(n.target, ast.Name) and n.target.id.startswith("suffix_decoding_") and n.value is not None}


_PLUGIN_ONLY = "Arctic Inference is required"


def _accepted(exp: Exported) -> bool:
    verdict = exp.verdict or {}
    if verdict.get("result") == "PASS":
        return True
    # suffix: every step before create_engine_config passed, the keys are SpeculativeConfig fields
    return (_method("vllm", exp.cfg or {}) == "suffix" and _PLUGIN_ONLY in (verdict.get("message") or "")
            and "speculative-config keys are SpeculativeConfig fields" in verdict.get("steps", []))


PARAMS = [pytest.param(case, release, id=f"{case}-{release.name}")
          for server in ("vllm", "sglang") for release in releases(server) for case in _cases(release)]


@pytest.mark.parametrize(("case_name", "release"), PARAMS)
def test_cli_export_runs_on_the_server(case_name: str, release: Release, checked) -> None:
    venv_python(release)
    exp = checked[release.name][case_name]
    if exp.code != 0:
        assert exp.code == 2 and exp.stderr.startswith("specplan: error: ") and exp.stderr.count("\n") == 1, (
            exp.code, exp.stderr)
        if (release.server, case_name) in REFUSED_EVERYWHERE:
            assert "nearest alternative" in exp.stderr, exp.stderr
            return
        assert exp.newest is not None and exp.newest.code == 0, (
            f"specplan refuses {case_name} on {release.name}: {exp.stderr.strip()}")
        assert exp.newest.verdict is not None and exp.newest.verdict["result"] == "REJECTED", (
            f"specplan refuses {case_name} for {release.name} ({exp.stderr.strip()}), but {release.name} "
            f"accepts the newest release's export")
        assert not _accepted(exp.newest)
        return
    assert exp.cfg is not None and exp.verdict is not None
    assert _accepted(exp), f"{release.name} rejected {exp.cfg} at {exp.verdict['step']}: {exp.verdict['message']}"
    if exp.head_path is not None:
        assert _head(release.server, exp.cfg) == exp.head_path, exp.cfg
    if _method(release.server, exp.cfg) == "suffix":
        spec = _spec(exp.cfg)
        written = {k: v for k, v in spec.items() if k.startswith("suffix_decoding_")}
        assert written == _suffix_defaults(release), written
        return
    facts = exp.verdict["facts"]
    wrong = {k: (v, facts.get(k)) for k, v in _expected(release.server, exp.cfg).items() if facts.get(k) != v}
    assert not wrong, f"{release.name} holds other values than the file says (file, server): {wrong}"

