"""Method exports (planner/exports/method_args.py) run through vLLM's and SGLang's own start-up code.

For each method case, each server and each release with a venv built by
``bash .ci/server_venvs.sh`` (tests/real_servers/harness.py), the keys ``method_args`` gives
for that release's line go into the file the server reads (vLLM: ``--speculative-config`` of
a ``vllm serve --config`` YAML; SGLang: ``launch_server --config`` YAML keys), a ``-serve.sh``
built by the exports' own ``shell_script`` is recorded under bash, every record of a release goes
through the server's checker (tests/real_servers/check_*.py) in one process (batch.py), and the
server must PASS and hold the values written.
The heads' config.json files come from the offline Hub cache (tests/real_servers/hub.py).

Where specplan refuses the method for a release, the refusal must be one line, and needed:
that release must reject the keys written for the newest release.

One case passes only up to a package the venv lacks on purpose: vLLM's suffix decoding
imports Arctic Inference in SpeculativeConfig._validate_suffix_decoding, after the keys were
parsed into SpeculativeConfig; that rejection (and no other) counts as accepting the keys.

llama.cpp's n-gram and head flags are checked against common/arg.cpp of b11312.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.errors import SpecplanError
from planner.exports.common import BesideScript, shell_script
from planner.exports.method_args import MethodArgs, method_args, method_line
from planner.exports.method_settings import method_settings
from tests.real_servers.batch import check_records, record_script
from tests.real_servers.harness import Release, find_venv, llamacpp_source, releases, venv_python
from tests.real_servers.hub import add_head, add_model
from tests.real_servers.llamacpp_args import server_options

pytestmark = pytest.mark.real_servers

LLAMA8B = "meta-llama/Llama-3.1-8B-Instruct"
DEEPSEEK = "deepseek-ai/DeepSeek-V3"
EAGLE3_HEAD = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
EAGLE_HEAD = "yuhuili/EAGLE-LLaMA3-Instruct-8B"
# Heads' config.json: the target's, with what the published heads change. EAGLE-3: one decoder layer,
# LlamaForCausalLMEagle3, draft_vocab_size 32000 (the llama3-8B-eagle3.json of the EAGLE-3 training
# recipes; the key set of NVIDIA ModelOpt export_spec_ckpt_config's "official format" template).
# EAGLE(-1): one LlamaForCausalLM layer. DeepSeek-V3: its config.json's num_nextn_predict_layers 1.
HEADS: dict[str, tuple[str, dict[str, Any]]] = {
    EAGLE3_HEAD: (LLAMA8B, {"architectures": ["LlamaForCausalLMEagle3"], "num_hidden_layers": 1,
                            "draft_vocab_size": 32000}),
    EAGLE_HEAD: (LLAMA8B, {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1}),
    DEEPSEEK: (DEEPSEEK, {"num_nextn_predict_layers": 1}),
}


@dataclass(frozen=True)
class Case:
    target: str
    settings: dict[str, Any]
    gpus: int = 1
    models: tuple[str, ...] = field(default=())  # ids whose config.json the servers read


CASES = {
    "eagle3": Case(LLAMA8B, dict(method="eagle3", k=3, head=EAGLE3_HEAD), models=(LLAMA8B, EAGLE3_HEAD)),
    "eagle3-tree": Case(LLAMA8B, dict(method="eagle3", head=EAGLE3_HEAD, num_steps=5, topk=8, num_draft_tokens=64),
                        models=(LLAMA8B, EAGLE3_HEAD)),
    "eagle": Case(LLAMA8B, dict(method="eagle", k=4, head=EAGLE_HEAD), models=(LLAMA8B, EAGLE_HEAD)),
    "mtp": Case(DEEPSEEK, dict(method="mtp", k=1), gpus=8, models=(DEEPSEEK,)),
    "ngram": Case(LLAMA8B, dict(method="ngram", k=4, prompt_lookup_min=2, prompt_lookup_max=5,
                                ngram_max_bfs_breadth=8), models=(LLAMA8B,)),
    "suffix": Case(LLAMA8B, dict(method="suffix", k=8, suffix_max_tree_depth=16), models=(LLAMA8B,)),
}
SERVERS = ("vllm", "sglang")
# Every check of a release runs in one checker process (tests/real_servers/batch.py). CI runs every SGLang case but, for vLLM,
# only what the CLI cannot write: the n-gram match windows and a suffix tree depth on the newest release
# (the tree refusal costs nothing). EAGLE-3 on both lines and MTP on the newest are checked end to end, in
# one process per release, by tests/test_real_method_cli_exports.py. SPECPLAN_METHOD_MATRIX=full runs every
# case on every release.
_VLLM_NEWEST_CASES = ("eagle3-tree", "ngram", "suffix")
_VLLM_OLDER_CASES: tuple[str, ...] = ()


def _in_matrix(case: str, release: Release) -> bool:
    if os.environ.get("SPECPLAN_METHOD_MATRIX") == "full" or release.server != "vllm":
        return True
    newest = releases("vllm")[0]
    return case in (_VLLM_NEWEST_CASES if release == newest else _VLLM_OLDER_CASES)


PARAMS = [pytest.param(case, release, id=f"{case}-{release.name}")
          for case in CASES for server in SERVERS for release in releases(server) if _in_matrix(case, release)]
_PLUGIN_ONLY = "Arctic Inference is required"  # vLLM suffix: keys parsed, the optional package absent


def _config(case: Case, args: MethodArgs) -> tuple[dict[str, Any], list[str]]:
    """The server's --config YAML and the program words of its command line."""
    if args.server == "vllm":
        # one GPU: vLLM 0.9.2 sizes its CPU swap space per tensor-parallel rank (4 GiB each) and refuses more
        # than this machine's memory; the method keys do not depend on the split
        cfg: dict[str, Any] = {"model": case.target, "tensor-parallel-size": 1, "max-model-len": 4096}
        if args.section == "speculative-config":
            cfg["speculative-config"] = json.dumps(args.keys)
        else:
            cfg.update(args.keys)
        return cfg, ["vllm", "serve", case.target]
    cfg = {"model-path": case.target, "tp-size": case.gpus, "context-length": 4096, **args.keys}
    return cfg, ["python3", "-m", "sglang.launch_server"]


def _record(case: Case, args: MethodArgs, release: Release, work: Path, hub: Path) -> dict:
    """Write the server's file and -serve.sh for ``args``; what the script passes to the server (batch.py)."""
    work.mkdir(parents=True, exist_ok=True)
    cfg, program = _config(case, args)
    (work / "server.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    script = work / "serve.sh"
    script.write_text(shell_script([f"method {args.method} on {release.name}"], program,
                                   [("--config", BesideScript("server.yaml"))]), encoding="utf-8")
    for repo_id in case.models:
        if repo_id in HEADS:
            add_head(hub, repo_id, *HEADS[repo_id])
        else:
            add_model(hub, repo_id)
    record = record_script(script, release.server, work)
    record["env"]["SPECPLAN_SIMULATED_GPUS"] = str(case.gpus)
    return record


@dataclass
class Checked:
    """One case on one release: the keys written (or the refusal), and the server's verdict on them."""

    args: MethodArgs | None = None
    refusal: str | None = None
    newest_args: MethodArgs | None = None  # the newest line's keys, fed to a release that refuses the method
    verdict: dict | None = None


def _case_on(case: Case, release: Release) -> Checked:
    settings = method_settings(**case.settings)
    try:
        return Checked(method_args(release.server, settings, method_line(release.server, release.version)))
    except SpecplanError as err:
        newest = releases(release.server)[0]
        try:
            new_args = method_args(release.server, settings, method_line(release.server, newest.version))
        except SpecplanError:
            new_args = None  # refused on every line read (SGLang suffix; a vLLM tree): nothing to feed the server
        return Checked(refusal=str(err), newest_args=new_args)


_MISSPELT = "misspelt"  # the negative control's key in the fixture


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, dict[str, Checked]]:
    """release name -> case -> keys and verdict, every release's records checked in one process."""
    root = tmp_path_factory.mktemp("method-keys")
    hub = root / "hub"
    out: dict[str, dict[str, Checked]] = {}
    for server in SERVERS:
        for release in releases(server):
            python, _ = find_venv(release)
            if python is None:
                continue  # each test says why (venv_python)
            done = {name: _case_on(CASES[name], release) for name in CASES if _in_matrix(name, release)}
            if release == releases("vllm")[0]:
                args = method_args("vllm", method_settings(**CASES["eagle3"].settings), method_line("vllm", release.version))
                done[_MISSPELT] = Checked(MethodArgs(**{**args.__dict__, "keys": {**args.keys, "eagle_bogus_setting": 1}}))
            fed = [(name, c, c.args or c.newest_args) for name, c in done.items() if (c.args or c.newest_args)]
            records = [_record(CASES["eagle3" if name == _MISSPELT else name], args, release, root / release.name / name,
                               hub) for name, _, args in fed]
            for (_, c, _), verdict in zip(fed, check_records(release, python, records, hub, root / release.name)):
                c.verdict = verdict
            out[release.name] = done
    return out


def _expected(args: MethodArgs) -> dict[str, Any]:
    """Facts the server must hold: the values written."""
    keys = args.keys
    if args.server == "vllm":
        pairs = {"method": keys.get("method"), "num_speculative_tokens": keys.get("num_speculative_tokens"),
                 "draft_model": keys.get("model"), "prompt_lookup_max": keys.get("prompt_lookup_max"),
                 "prompt_lookup_min": keys.get("prompt_lookup_min")}
        return {k: v for k, v in pairs.items() if v is not None}
    names = ("speculative-num-steps", "speculative-eagle-topk", "speculative-num-draft-tokens",
             "speculative-draft-model-path")
    facts = {n.replace("-", "_"): keys[n] for n in names if n in keys}
    if keys.get("speculative-algorithm") == "NGRAM":
        facts.pop("speculative_eagle_topk", None)  # SGLang sets it to the max BFS breadth itself
        if "speculative-ngram-max-bfs-breadth" in keys:
            facts["speculative_ngram_max_bfs_breadth"] = keys["speculative-ngram-max-bfs-breadth"]
    return facts


def _accepted(verdict: dict, args: MethodArgs) -> bool:
    return verdict["result"] == "PASS" or (args.method == "suffix" and _PLUGIN_ONLY in (verdict["message"] or ""))


@pytest.mark.parametrize(("case_name", "release"), PARAMS)
def test_server_accepts_method_keys(case_name: str, release: Release, checked) -> None:
    venv_python(release)
    c = checked[release.name][case_name]
    if c.refusal is not None:
        assert "\n" not in c.refusal
        if c.newest_args is None:
            return
        assert c.verdict is not None and c.verdict["result"] == "REJECTED" and not _accepted(c.verdict, c.newest_args), (
            f"specplan refuses {case_name} for {release.name} ({c.refusal}), but {release.name} accepts the "
            f"{releases(release.server)[0].name} keys")
        return
    args, verdict = c.args, c.verdict
    assert args is not None and verdict is not None
    assert _accepted(verdict, args), f"{release.name} rejected {args.keys} at {verdict['step']}: {verdict['message']}"
    if verdict["result"] != "PASS":
        return
    facts = verdict["facts"]
    wrong = {k: (v, facts.get(k)) for k, v in _expected(args).items() if facts.get(k) != v}
    assert not wrong, f"{release.name} holds other values than written (written, server): {wrong}"


def test_vllm_rejects_a_misspelt_method_key(checked) -> None:
    """The harness can fail: the newest vLLM rejects the EAGLE-3 keys with one key no release has."""
    release = releases("vllm")[0]
    venv_python(release)
    verdict = checked[release.name][_MISSPELT].verdict
    assert verdict is not None and verdict["result"] == "REJECTED" and "bogus" in verdict["message"], verdict


LLAMACPP_METHODS = [("ngram", kind) for kind in ("ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod",
                                                  "ngram-cache")] + [(m, "ngram-simple") for m in ("eagle3", "mtp", "draft")]


@pytest.mark.parametrize(("method", "kind"), LLAMACPP_METHODS)
def test_llamacpp_method_flags_are_live_options(method: str, kind: str) -> None:
    """Every flag written for the spec-draft line is a llama-server option of b11312, not a removed one."""
    folder = llamacpp_source("0.3.36")  # vendors llama.cpp 0c1e57098 = build 11312 (tests/test_real_servers.py)
    if folder is None:
        pytest.skip("no llama.cpp source llama-cpp-python 0.3.36 (run `bash .ci/server_venvs.sh`)")
    options = server_options((folder / "arg.cpp").read_text(encoding="utf-8"))
    head = None if method in ("ngram", "mtp") else "head.gguf"
    settings = method_settings(method=method, k=4, head=head, prompt_lookup_max=3, llamacpp_ngram_type=kind)
    flags = set(method_args("llamacpp", settings, method_line("llamacpp", "b11312")).keys)
    assert not flags - options.flags, f"not llama-server options: {sorted(flags - options.flags)}"
    assert not flags & options.removed, f"removed options: {sorted(flags & options.removed)}"
