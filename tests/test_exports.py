"""Server config exports: every file parses back, every key is one its server release accepts.

The accepted argument lists are planner/exports/server_args/<server>.yaml, read from each
server's source. Plans come from the planner itself (estimate / recommend and their JSON
views), as `specplan export` will make them, and from a saved JSON file.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shlex
from typing import Any

import pytest
import yaml

from planner import __version__
from planner.cli import main
from planner.errors import SpecplanError
from planner.exports import (
    SERVERS,
    ExportPlan,
    export_plan,
    plan_from_json,
    server_lines,
    write_export,
)
from planner.exports.names import served_name
from planner.exports.versions import parse_build, parse_version, select_line, server_args
from planner.outputs.plan_view import estimate_to_dict, recommendation_to_dict
from planner.plan import EstimateInputs, RecommendInputs, estimate, recommend
from planner.requests import FitInputs

PLACEHOLDER = re.compile(r"<[^<>]*>|\bTODO\b|xxx|PATH_TO|CHANGE_?ME|YOUR_|\.\.\.", re.IGNORECASE)
EXEC_SERVERS = ("vllm", "sglang", "llamacpp", "trtllm", "hf")
MEASURE = {  # the acceptance metric / log each server's comment block must name
    "vllm": "vllm:spec_decode",
    "sglang": "sglang:spec_accept_length",
    "llamacpp": "draft_n_accepted",
    "trtllm": "numAcceptedTokens",
    "hf": "--compare",
}


# --- plans -----------------------------------------------------------------------------------------------


def _estimate(k: int | None = None, **fit: Any) -> dict[str, Any]:
    inp = FitInputs(**fit) if k is None else FitInputs(k=k, **fit)
    return estimate_to_dict(estimate(EstimateInputs(inp, k_given=k is not None)))


@pytest.fixture(scope="module")
def est_8b() -> dict[str, Any]:
    return _estimate(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm")


@pytest.fixture(scope="module")
def rec_70b() -> dict[str, Any]:
    rec = recommend(RecommendInputs(FitInputs(target="llama-3.1-70b", gpu="h100-sxm", gpus=4)))
    return recommendation_to_dict(rec, "chat", "latency")


@pytest.fixture(scope="module")
def est_fp8() -> dict[str, Any]:
    return _estimate(target="llama-3.1-70b", draft="llama-3.2-1b", gpu="h100-sxm", gpus=2, precision="fp8",
                     draft_precision="fp8", kv_precision="fp8", batch=4, context=16384)


@pytest.fixture(scope="module")
def est_gguf() -> dict[str, Any]:
    return _estimate(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm", gpus=2, engine="llamacpp",
                     kv_precision="q8_0", batch=2)


@pytest.fixture(scope="module")
def est_qwen_tp4() -> dict[str, Any]:
    """Qwen2.5-0.5B's 14 heads do not split 4 ways: the draft stays on one GPU."""
    return _estimate(target="qwen2.5-72b", draft="qwen2.5-0.5b", gpu="h100-sxm", gpus=4)


def _plans(est_8b, rec_70b, est_fp8) -> list[ExportPlan]:
    return [plan_from_json(d) for d in (est_8b, rec_70b, est_fp8)]


# --- parsing helpers ---------------------------------------------------------------------------------------


def _no_placeholder(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _no_placeholder(k, where)
            _no_placeholder(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _no_placeholder(v, where)
    elif isinstance(value, str):
        assert not PLACEHOLDER.search(value), f"placeholder-like value {value!r} in {where}"
        assert value.strip(), f"empty value in {where}"


def _body(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _parse_script(text: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(variable defaults, exported env, words of the exec'd command) of an exported script."""
    assert text.startswith("#!/usr/bin/env bash\n")
    variables, env, command = {}, {}, ""
    lines = _body(text)
    assert lines[0] == "set -euo pipefail"
    for i, line in enumerate(lines[1:], start=1):
        if m := re.fullmatch(r'if \[ -z "\$\{(\w+):-\}" \]; then \1=(.*); fi', line):
            (variables[m.group(1)],) = shlex.split(m.group(2))
        elif line.startswith("export "):
            (word,) = shlex.split(line[len("export "):])
            name, _, value = word.partition("=")
            env[name] = value
        elif line.startswith("exec "):
            command = " ".join(ln.rstrip("\\").strip() for ln in lines[i:])
            break
    words = shlex.split(command)
    assert words[0] == "exec"
    return variables, env, words[1:]


def _options(words: list[str], program_words: int) -> list[tuple[str, str | None]]:
    """(flag, value) pairs after the program's own words; a flag followed by a flag is bare."""
    rest, pairs, i = words[program_words:], [], 0
    while i < len(rest):
        flag = rest[i]
        assert flag.startswith("-"), f"positional {flag!r} among the options"
        value = rest[i + 1] if i + 1 < len(rest) and not rest[i + 1].startswith("--") else None
        pairs.append((flag, value))
        i += 2 if value is not None else 1
    return pairs


def _check_header(text: str, plan: ExportPlan, server: str) -> None:
    assert f"specplan {__version__}" in text
    assert plan.created_at in text
    assert f"speedup {plan.speedup:.2f}x" in text and f"{plan.speedup_low:.2f}-{plan.speedup_high:.2f}x" in text
    assert f"alpha {plan.alpha:.3f} from {plan.alpha_source}" in text
    assert f"{plan.vram_total_gib:.1f} of {plan.vram_capacity_gib:.1f} GiB per GPU" in text
    assert "Measure acceptance afterwards" in text and MEASURE[server] in text


def _line(server: str, version: str | None) -> dict[str, Any]:
    return select_line(server, version).args


# --- per-server checks -------------------------------------------------------------------------------------


def _check_vllm(plan: ExportPlan, version: str | None) -> None:
    exp = export_plan(plan, "vllm", version)
    accepted = _line("vllm", version)
    assert set(exp.files) == {"vllm.yaml", "vllm-serve.sh"}
    cfg = yaml.safe_load(exp.files["vllm.yaml"])
    assert set(cfg) <= set(accepted["config_keys"]), set(cfg) - set(accepted["config_keys"])
    assert cfg["model"] == served_name(plan.target) and cfg["tensor-parallel-size"] == plan.tensor_parallel
    assert cfg["max-model-len"] == plan.context and cfg["max-num-seqs"] == plan.batch
    assert 0.9 <= cfg["gpu-memory-utilization"] <= 0.95
    assert cfg.get("kv-cache-dtype", "auto") in accepted["kv_cache_dtypes"]
    assert cfg.get("dtype", "auto") in accepted["dtypes"]
    if plan.precision == "fp8":
        assert cfg["quantization"] == "fp8"
    if plan.kv_precision == "fp8":
        assert cfg["kv-cache-dtype"] == "fp8"
    if "speculative-config" in cfg:
        spec = json.loads(cfg["speculative-config"])
        assert set(spec) <= set(accepted["speculative_config_keys"]), set(spec)
        assert spec["method"] == "draft_model" and spec["method"] in accepted["speculative_methods"]
        assert spec["model"] == served_name(plan.draft) and spec["num_speculative_tokens"] == plan.k
        assert spec["draft_tensor_parallel_size"] == plan.draft_tensor_parallel in (1, plan.tensor_parallel)
        assert spec["max_model_len"] <= plan.context
        assert spec.get("quantization") == ("fp8" if plan.draft_precision == "fp8" else None)
        _no_placeholder(spec, "speculative-config")
    else:
        assert cfg["speculative-model"] == served_name(plan.draft) and cfg["num-speculative-tokens"] == plan.k
        assert cfg["speculative-draft-tensor-parallel-size"] == plan.draft_tensor_parallel
    _no_placeholder(cfg, "vllm.yaml")
    _, env, words = _parse_script(exp.files["vllm-serve.sh"])
    assert words[:3] == ["vllm", "serve", served_name(plan.target)]
    opts = _options(words, 3)
    assert {f for f, _ in opts} <= set(accepted["cli_flags"])
    assert dict(opts)["--config"] == '$(dirname -- $0)/vllm.yaml'  # shlex.split of "$(dirname -- "$0")"/vllm.yaml
    assert set(env) <= set(accepted.get("env", ()))
    _no_placeholder(words, "vllm-serve.sh")
    for text in exp.files.values():
        _check_header(text, plan, "vllm")


def _check_sglang(plan: ExportPlan) -> None:
    exp = export_plan(plan, "sglang")
    accepted = _line("sglang", None)
    cfg = yaml.safe_load(exp.files["sglang.yaml"])
    assert set(cfg) <= set(accepted["config_keys"]), set(cfg) - set(accepted["config_keys"])
    assert cfg["model-path"] == served_name(plan.target) and cfg["tp-size"] == plan.tensor_parallel
    assert cfg["context-length"] == plan.context and cfg["max-running-requests"] == plan.batch
    assert cfg["speculative-algorithm"] == "STANDALONE" in accepted["speculative_algorithms"]
    assert cfg["speculative-draft-model-path"] == served_name(plan.draft)
    # steps / topk / num-draft-tokens: all three, one chain of k, verification budget k + 1
    assert (cfg["speculative-num-steps"], cfg["speculative-eagle-topk"], cfg["speculative-num-draft-tokens"]) == (
        plan.k, 1, plan.k + 1)
    assert 0 < cfg["mem-fraction-static"] <= 0.95
    assert cfg.get("kv-cache-dtype", "auto") in accepted["kv_cache_dtypes"]
    if "speculative-draft-model-quantization" in cfg:
        assert cfg["speculative-draft-model-quantization"] in accepted["quantizations"]
    _no_placeholder(cfg, "sglang.yaml")
    _, _, words = _parse_script(exp.files["sglang-serve.sh"])
    assert words[:3] == ["python3", "-m", "sglang.launch_server"]
    assert {f for f, _ in _options(words, 3)} <= set(accepted["cli_flags"])
    for text in exp.files.values():
        _check_header(text, plan, "sglang")


def _check_trtllm(plan: ExportPlan, version: str | None) -> None:
    exp = export_plan(plan, "trtllm", version)
    accepted = _line("trtllm", version)
    cfg = yaml.safe_load(exp.files["trtllm.yaml"])
    assert set(cfg) <= set(accepted["config_keys"]), set(cfg) - set(accepted["config_keys"])
    assert set(cfg["kv_cache_config"]) <= set(accepted["kv_cache_config_keys"])
    assert cfg["kv_cache_config"]["dtype"] in accepted["kv_cache_dtypes"]
    spec = cfg["speculative_config"]
    assert set(spec) <= set(accepted["speculative_config_keys"]), set(spec)
    assert spec["decoding_type"] == accepted["draft_target_decoding_type"] in accepted["decoding_types"]
    assert spec["decoding_type"] == ("DraftTarget" if select_line("trtllm", version).name == "1.0-1.1" else "Draft_Target")
    assert spec["max_draft_len"] == plan.k
    draft_key = "speculative_model_dir" if select_line("trtllm", version).name == "1.0-1.1" else "speculative_model"
    assert spec[draft_key] == served_name(plan.draft)
    assert cfg["tensor_parallel_size"] == plan.tensor_parallel and cfg["max_seq_len"] == plan.context
    assert cfg["max_batch_size"] == plan.batch and 0 < cfg["kv_cache_config"]["free_gpu_memory_fraction"] <= 0.95
    _no_placeholder(cfg, "trtllm.yaml")
    _, _, words = _parse_script(exp.files["trtllm-serve.sh"])
    assert words[:2] == ["trtllm-serve", served_name(plan.target)]
    assert {f for f, _ in _options(words, 2)} <= set(accepted["cli_flags"])
    for text in exp.files.values():
        _check_header(text, plan, "trtllm")


def _check_llamacpp(plan: ExportPlan, version: str | None) -> dict[str, str]:
    exp = export_plan(plan, "llamacpp", version)
    accepted = _line("llamacpp", version)
    classic = select_line("llamacpp", version).name == "classic"
    variables, _, words = _parse_script(exp.files["llamacpp-serve.sh"])
    assert words[0] == "llama-server"
    opts = dict(_options(words, 1))
    assert set(opts) <= set(accepted["cli_flags"]), set(opts) - set(accepted["cli_flags"])
    resolved = {f: variables.get(v[1:], v) if v and v.startswith("$") else v for f, v in opts.items()}
    assert set(variables) == {"TARGET_GGUF", "DRAFT_GGUF"}
    assert all(v.endswith(".gguf") for v in variables.values())
    max_flag, ngld, draft_flag = (("--draft-max", "-ngld", "-md") if classic
                                  else ("--spec-draft-n-max", "--spec-draft-ngl", "--spec-draft-model"))
    assert resolved[max_flag] == str(plan.k) and resolved[ngld] == "99" and resolved["-ngl"] == "99"
    assert resolved[draft_flag] == variables["DRAFT_GGUF"] and resolved["-m"] == variables["TARGET_GGUF"]
    assert resolved["-c"] == str(plan.context * plan.batch) and resolved["-np"] == str(plan.batch)
    assert float(resolved["--draft-p-min" if classic else "--spec-draft-p-min"]) > 0
    if classic:
        assert resolved["-cd"] == str(plan.context)
    else:
        assert resolved["--spec-type"] == "draft-simple" and "--draft-max" not in opts
    if plan.tensor_parallel > 1:
        assert resolved["-sm"] == "layer" and "layer" in accepted["split_modes"]
    if plan.kv_precision in ("q8_0", "q4_0"):
        assert resolved["-ctk"] == resolved["-ctv"] == plan.kv_precision in accepted["cache_types"]
    _no_placeholder(list(resolved.values()), "llamacpp-serve.sh")
    env = {}
    for line in _body(exp.files["llamacpp.env"]):
        (word,) = shlex.split(line)
        name, _, value = word.partition("=")
        env[name] = value
    assert set(env) <= set(accepted["env"]), set(env) - set(accepted["env"])
    assert len(env) == len(opts)  # the same settings, one variable per flag
    assert env["LLAMA_ARG_MODEL"] == variables["TARGET_GGUF"]
    _no_placeholder(env, "llamacpp.env")
    for text in exp.files.values():
        _check_header(text, plan, "llamacpp")
    return resolved


def _check_hf(plan: ExportPlan, version: str | None) -> None:
    exp = export_plan(plan, "hf", version)
    accepted = _line("hf", version)
    (name, text), = exp.files.items()
    assert name.endswith(".py")
    tree = ast.parse(text)
    compile(text, name, "exec")
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert constants["TARGET"] == served_name(plan.target) and constants["ASSISTANT"] == served_name(plan.draft)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]

    def kwargs(func: str) -> list[dict[str, Any]]:
        out = []
        for c in calls:
            f = c.func
            if (isinstance(f, ast.Name) and f.id == func) or (isinstance(f, ast.Attribute) and f.attr == func):
                out.append({k.arg: k.value for k in c.keywords if k.arg is not None})
        return out

    (gen,) = kwargs("GenerationConfig")
    assert set(gen) <= set(accepted["generation_config_keys"])
    assert gen["num_assistant_tokens"].value == plan.k
    assert gen["num_assistant_tokens_schedule"].value == "constant" in accepted["schedules"]
    loads = kwargs("from_pretrained")
    assert len(loads) == 3
    for kw in loads:
        assert set(kw) <= set(accepted["from_pretrained_kwargs"])
    generate = kwargs("generate")
    assert generate and all(set(kw) <= set(accepted["generate_kwargs"]) for kw in generate)
    assert any("assistant_model" in kw for kw in generate)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
               and n.value.strip()]  # " ".join separators are code, not values
    _no_placeholder(strings, name)
    _check_header(text, plan, "hf")


# --- accepted files, every server and line -----------------------------------------------------------------


@pytest.mark.parametrize("version", [None, "0.33.0", "0.25.0", "0.15.0", "0.20.1", "0.24.1", "0.9.2", "0.8.5",
                                     "0.8.2", "0.8.1", "0.8.0", "0.7.3", "0.6.0"])
def test_vllm_files_use_only_accepted_arguments(est_8b, rec_70b, est_fp8, version):
    for plan in _plans(est_8b, rec_70b, est_fp8):
        _check_vllm(plan, version)


def test_vllm_old_flags_and_v0_engine(est_8b):
    plan = plan_from_json(est_8b)
    old = export_plan(plan, "vllm", "0.7.3")
    assert "speculative-model" in yaml.safe_load(old.files["vllm.yaml"])
    assert "--use-v2-block-manager" in old.files["vllm-serve.sh"]
    assert _parse_script(old.files["vllm-serve.sh"])[1] == {"VLLM_USE_V1": "0"}
    v081 = export_plan(plan, "vllm", "0.8.1")  # --speculative-config only from 0.8.2
    assert "speculative-model" in yaml.safe_load(v081.files["vllm.yaml"])
    v0 = export_plan(plan, "vllm", "0.9")
    assert _parse_script(v0.files["vllm-serve.sh"])[1] == {"VLLM_USE_V1": "0"}
    assert "speculative-config" in yaml.safe_load(export_plan(plan, "vllm", "0.8.2").files["vllm.yaml"])
    current = export_plan(plan, "vllm")
    assert current.line == "0.25+" and "VLLM_USE_V1" not in current.files["vllm-serve.sh"]


def test_vllm_draft_stays_on_one_gpu_when_heads_do_not_split(est_qwen_tp4):
    plan = plan_from_json(est_qwen_tp4)
    assert plan.tensor_parallel == 4 and plan.draft_tensor_parallel == 1
    _check_vllm(plan, None)


def test_sglang_files_use_only_accepted_arguments(est_8b, rec_70b, est_fp8):
    for plan in _plans(est_8b, rec_70b, est_fp8):
        _check_sglang(plan)
    cfg = yaml.safe_load(export_plan(plan_from_json(est_fp8), "sglang").files["sglang.yaml"])
    assert cfg["quantization"] == "fp8" and cfg["kv-cache-dtype"] == "fp8_e4m3"
    assert cfg["speculative-draft-model-quantization"] == "fp8"


def test_sglang_refuses_a_draft_that_cannot_share_the_tp_group(est_qwen_tp4):
    with pytest.raises(SpecplanError, match="tensor-parallel group"):
        export_plan(plan_from_json(est_qwen_tp4), "sglang")


@pytest.mark.parametrize("version", [None, "1.2.0", "1.0.0", "1.1.0rc2"])
def test_trtllm_files_use_only_accepted_arguments(est_8b, version):
    _check_trtllm(plan_from_json(est_8b), version)


def test_trtllm_quantized_checkpoints_come_from_flags(rec_70b, est_fp8):
    plan = plan_from_json(rec_70b)  # draft planned as fp8, but the catalogue id is the bf16 checkpoint
    with pytest.raises(SpecplanError, match="--draft-path"):
        export_plan(plan, "trtllm")
    exp = export_plan(plan, "trtllm", draft_path="/models/Llama-3.1-8B-FP8")
    assert yaml.safe_load(exp.files["trtllm.yaml"])["speculative_config"]["speculative_model"] == "/models/Llama-3.1-8B-FP8"
    fp8 = plan_from_json(est_fp8)
    exp = export_plan(fp8, "trtllm", target_path="/models/Llama-3.1-70B-FP8", draft_path="/models/Llama-3.2-1B-FP8")
    cfg = yaml.safe_load(exp.files["trtllm.yaml"])
    assert cfg["kv_cache_config"]["dtype"] == "fp8" and cfg["enable_chunked_prefill"] is True


@pytest.mark.parametrize("version", [None, "spec-draft", "b9500", "classic", "b8672", "b4200", "b8940", "b9174",
                                     "version: 11312 (0c1e570)", "0.5.0-dev (build 11312, commit 0c1e570)"])
def test_llamacpp_files_use_only_accepted_arguments(est_gguf, version):
    plan = plan_from_json(est_gguf)
    resolved = _check_llamacpp(plan, version)
    assert resolved["-m"] == "Llama-3.1-8B-Q4_K_M.gguf"  # derived from the repo id and the GGUF type


def test_llamacpp_from_a_16_bit_plan_and_given_files(est_8b):
    plan = plan_from_json(est_8b)
    resolved = _check_llamacpp(plan, None)
    assert resolved["-m"] == "Llama-3.1-8B-BF16.gguf"
    exp = export_plan(plan, "llamacpp", target_path="/srv/models/target.gguf", draft_path="/srv/models/draft.gguf")
    variables, _, _ = _parse_script(exp.files["llamacpp-serve.sh"])
    assert variables == {"TARGET_GGUF": "/srv/models/target.gguf", "DRAFT_GGUF": "/srv/models/draft.gguf"}


@pytest.mark.parametrize("version", [None, "4.57.1", "4.46.0"])
def test_hf_snippet_uses_only_accepted_arguments(est_8b, version):
    _check_hf(plan_from_json(est_8b), version)


def test_hf_dtype_keyword_follows_the_release(est_8b):
    plan = plan_from_json(est_8b)
    assert "dtype=torch.bfloat16" in export_plan(plan, "hf").files["hf_assisted.py"]
    assert "torch_dtype=torch.bfloat16" in export_plan(plan, "hf", "4.46").files["hf_assisted.py"]


def test_every_export_from_a_saved_recommend_file(runner, tmp_path):
    result = runner.invoke(main, ["recommend", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    saved = tmp_path / "plan.json"
    saved.write_text(result.stdout, encoding="utf-8")
    plan = plan_from_json(json.loads(saved.read_text(encoding="utf-8")))
    data = json.loads(result.stdout)
    first = next(c for c in data["candidates"] if c["draft"] and c["fits"])
    assert (plan.draft, plan.k, plan.draft_precision) == (first["draft"], first["k"], first["draft_precision"])
    _check_vllm(plan, None)
    _check_sglang(plan)
    if plan.draft_precision in ("bf16", "fp16") and plan.precision in ("bf16", "fp16"):
        _check_llamacpp(plan, None)
    else:  # an fp8/AWQ draft has no GGUF form
        with pytest.raises(SpecplanError, match="llama.cpp llama-server cannot run"):
            export_plan(plan, "llamacpp")


# --- refusals ----------------------------------------------------------------------------------------------


def test_plan_that_does_not_fit_is_refused(est_8b):
    big = _estimate(target="llama-3.1-70b", draft="llama-3.2-1b", gpu="h100-sxm")
    assert big["fit"]["fits"] is False
    with pytest.raises(SpecplanError, match="does not fit"):
        plan_from_json(big)
    plan = dataclasses.replace(plan_from_json(est_8b), fits=False)
    for server in EXEC_SERVERS:
        with pytest.raises(SpecplanError, match="does not fit"):
            export_plan(plan, server)


def test_recommendation_without_a_fitting_draft_is_refused(rec_70b):
    no_draft = {**rec_70b, "candidates": [c for c in rec_70b["candidates"] if not c["draft"]]}
    with pytest.raises(SpecplanError, match="no candidate of the plan uses a draft"):
        plan_from_json(no_draft)
    too_big = {**rec_70b, "candidates": [{**c, "fits": False} for c in rec_70b["candidates"]]}
    with pytest.raises(SpecplanError, match="no candidate with a draft fits"):
        plan_from_json(too_big)


def test_plan_without_a_draft_is_refused(est_8b):
    alone = _estimate(target="llama-3.1-8b", gpu="h100-sxm")
    with pytest.raises(SpecplanError, match="no draft model"):
        plan_from_json(alone)
    plan = dataclasses.replace(plan_from_json(est_8b), draft=None, k=None)
    with pytest.raises(SpecplanError, match="no draft model"):
        export_plan(plan, "vllm")


def test_tokenizer_mismatch_is_refused(est_8b):
    forced = _estimate(target="llama-3.1-8b", draft="qwen2.5-0.5b", gpu="h100-sxm", allow_tokenizer_mismatch=True)
    with pytest.raises(SpecplanError, match="tokenizer"):
        plan_from_json(forced)
    edited = {**est_8b, "draft": "Qwen/Qwen2.5-0.5B", "draft_catalog_id": "Qwen/Qwen2.5-0.5B"}
    with pytest.raises(SpecplanError, match="tokenizer"):
        plan_from_json(edited)
    # a name edited without its recorded release would be checked against the wrong facts: refused
    with pytest.raises(SpecplanError, match="edited by hand"):
        plan_from_json({**est_8b, "draft": "Qwen/Qwen2.5-0.5B"})


@pytest.mark.parametrize("server, alternative", [("ollama", "--server llamacpp"), ("tgi", "--server vllm")])
def test_servers_without_draft_models_are_refused(est_8b, server, alternative):
    with pytest.raises(SpecplanError, match="no draft-model speculative decoding") as err:
        export_plan(plan_from_json(est_8b), server)
    assert alternative in str(err.value)


@pytest.mark.parametrize("version", ["0.10.0", "0.11.2", "0.12", "0.13.0", "0.14.0", "0.14.1"])
def test_vllm_releases_without_draft_models_are_refused(est_8b, version):
    with pytest.raises(SpecplanError, match="cannot run a draft model"):
        export_plan(plan_from_json(est_8b), "vllm", version)


@pytest.mark.parametrize("server, version", [("vllm", "0.5.4"), ("sglang", "0.4.9"), ("trtllm", "0.21.0"),
                                             ("llamacpp", "b3000"), ("hf", "4.30.0")])
def test_releases_before_the_interface_are_refused(est_8b, server, version):
    with pytest.raises(SpecplanError):
        export_plan(plan_from_json(est_8b), server, version)


@pytest.mark.parametrize("server", ["vllm", "sglang", "trtllm", "hf"])
def test_gguf_plan_to_a_server_without_gguf_is_refused(est_gguf, server):
    with pytest.raises(SpecplanError, match="cannot run the target as q4_k_m"):
        export_plan(plan_from_json(est_gguf), server)


def test_llamacpp_refuses_formats_it_does_not_load(est_fp8):
    with pytest.raises(SpecplanError, match="cannot run the target as fp8"):
        export_plan(plan_from_json(est_fp8), "llamacpp")


def test_pre_quantized_draft_needs_a_checkpoint(est_8b):
    awq = _estimate(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm", draft_precision="int4-awq")
    plan = plan_from_json(awq)
    with pytest.raises(SpecplanError, match="--draft-path"):
        export_plan(plan, "vllm")
    exp = export_plan(plan, "vllm", draft_path="/models/Llama-3.2-1B-AWQ")
    spec = json.loads(yaml.safe_load(exp.files["vllm.yaml"])["speculative-config"])
    assert spec["model"] == "/models/Llama-3.2-1B-AWQ" and "quantization" not in spec  # read from the checkpoint
    cfg = yaml.safe_load(export_plan(plan, "sglang", draft_path="/models/Llama-3.2-1B-AWQ").files["sglang.yaml"])
    assert cfg["speculative-draft-model-quantization"] == "awq"


def test_hf_refuses_batches(est_8b):
    plan = dataclasses.replace(plan_from_json(est_8b), batch=4)
    with pytest.raises(SpecplanError, match="one sequence at a time"):
        export_plan(plan, "hf")


def test_memory_fractions_come_from_the_plan(est_8b):
    plan = plan_from_json(est_8b)
    memory = dict(plan.memory_gib)
    squeezed = dataclasses.replace(plan, memory_gib=tuple({**memory, "kv_cache": 54.0}.items()))
    cfg = yaml.safe_load(export_plan(squeezed, "vllm").files["vllm.yaml"])
    need = (14.958 + 2.302 + 54.0 + 0.783 + 1.0) / 79.65  # weights, KV, activations, CUDA context
    assert cfg["gpu-memory-utilization"] == pytest.approx(need + 0.02, abs=0.011) and cfg["gpu-memory-utilization"] <= 0.95
    full = dataclasses.replace(plan, memory_gib=tuple({**memory, "kv_cache": 75.0}.items()))
    for server in ("vllm", "sglang", "trtllm"):
        with pytest.raises(SpecplanError, match="re-plan"):
            export_plan(full, server)


def test_unknown_server_and_version(est_8b):
    plan = plan_from_json(est_8b)
    with pytest.raises(SpecplanError, match="unknown server"):
        export_plan(plan, "nginx")
    with pytest.raises(SpecplanError, match="release number"):
        export_plan(plan, "vllm", "tomorrow")
    with pytest.raises(SpecplanError, match="cannot read a release number"):
        export_plan(plan, "vllm", "0.9.2; rm -rf /")
    with pytest.raises(SpecplanError, match="control character"):
        export_plan(plan, "vllm", "0.9.2\n")
    with pytest.raises(SpecplanError, match="build number"):
        export_plan(plan, "llamacpp", "version: eleven")


# --- data and writing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", EXEC_SERVERS)
def test_server_args_files_name_their_sources(server):
    doc = server_args(server)
    assert doc["server"] == server and doc["default_line"] in {e["name"] for e in doc["lines"]}
    for entry in doc["lines"]:
        if "refuse" in entry:
            continue
        assert entry["version"] and entry["source"]
        for src in entry["source"]:
            assert {"repo", "path", "version"} <= set(src)
    assert server_lines(server)[0] == doc["default_line"]


def test_versions_parse_and_select_lines():
    assert parse_version("v0.14.0rc1") == (0, 14, 0, 1) and parse_build("b8672") == (8672,)
    assert parse_build("version: 11312 (0c1e570)") == parse_build("0.5.0-dev (build 11312, commit 0c1e570)") == (11312,)
    assert select_line("vllm", "0.9.2").name == "0.8.2-0.9" and select_line("vllm", "0.8.1").name == "0.6-0.8.1"
    assert select_line("vllm", "0.15").name == "0.15-0.24" and select_line("vllm", "0.25.0").name == "0.25+"
    assert select_line("llamacpp", "b8940").name == "classic" and select_line("llamacpp", "b9174").name == "spec-draft"
    assert select_line("llamacpp", "0.5.0-dev (build 11312, commit 0c1e570)").name == "spec-draft"
    with pytest.raises(SpecplanError, match="PR #22397"):
        select_line("llamacpp", "b9000")
    assert select_line("trtllm", "1.2.0rc5").name == "1.2+"
    assert set(SERVERS) == {"vllm", "sglang", "llamacpp", "trtllm", "hf", "ollama", "tgi"}


def test_write_export_is_atomic_and_refuses_overwrite(est_8b, tmp_path):
    exp = export_plan(plan_from_json(est_8b), "vllm")
    written = write_export(exp, tmp_path)
    assert sorted(p.name for p in written) == ["vllm-serve.sh", "vllm.yaml"]
    assert (tmp_path / "vllm.yaml").read_text(encoding="utf-8") == exp.files["vllm.yaml"]
    assert os.access(tmp_path / "vllm-serve.sh", os.X_OK)
    (tmp_path / "vllm.yaml").write_text("mine\n", encoding="utf-8")
    with pytest.raises(SpecplanError, match="--force"):
        write_export(exp, tmp_path)
    assert (tmp_path / "vllm.yaml").read_text(encoding="utf-8") == "mine\n"
    write_export(exp, tmp_path, force=True)
    assert (tmp_path / "vllm.yaml").read_text(encoding="utf-8") == exp.files["vllm.yaml"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_plan_that_does_not_pay_exports_with_a_warning(est_8b):
    slow = dataclasses.replace(plan_from_json(est_8b), speedup=0.8, speedup_low=0.7, speedup_high=0.9)
    exp = export_plan(slow, "vllm")
    assert "does not pay" in exp.summary
    assert all("WARNING: the plan predicts 0.80x" in text for text in exp.files.values())


# --- vocabularies, draft formats, names ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def est_qwen_32b() -> dict[str, Any]:
    """Qwen2.5-32B pads its embedding to 152064 rows, Qwen2.5-0.5B to 151936 (one tokenizer)."""
    return _estimate(target="qwen2.5-32b", draft="qwen2.5-0.5b", gpu="h100-sxm")


def test_vllm_different_padded_vocabularies(est_qwen_32b, est_8b):
    plan = plan_from_json(est_qwen_32b)
    for version in (None, "0.25.0", "0.33.0"):
        exp = export_plan(plan, "vllm", version)
        spec = json.loads(yaml.safe_load(exp.files["vllm.yaml"])["speculative-config"])
        assert spec["use_heterogeneous_vocab"] is True
        assert "use_heterogeneous_vocab" in _line("vllm", version)["speculative_config_keys"]
        assert "152064" in exp.files["vllm.yaml"] and "151936" in exp.files["vllm.yaml"]
    for version in ("0.15.0", "0.24.0", "0.9.2", "0.7.3"):
        with pytest.raises(SpecplanError, match="vocab_size 152064, draft 151936") as err:
            export_plan(plan, "vllm", version)
        assert "0.25" in str(err.value)
    same = json.loads(yaml.safe_load(export_plan(plan_from_json(est_8b), "vllm").files["vllm.yaml"])["speculative-config"])
    assert "use_heterogeneous_vocab" not in same
    assert "use_heterogeneous_vocab" not in _line("vllm", "0.24.0")["speculative_config_keys"]


def test_sglang_draft_quantization_flag_only_from_0_5_7(est_8b):
    fp8_draft = plan_from_json(_estimate(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm",
                                         draft_precision="fp8"))
    new = yaml.safe_load(export_plan(fp8_draft, "sglang").files["sglang.yaml"])
    assert new["speculative-draft-model-quantization"] == "fp8"
    with pytest.raises(SpecplanError, match="0.5.7"):
        export_plan(fp8_draft, "sglang", "0.5.3")
    accepted = _line("sglang", "0.5.6")
    old_plain = yaml.safe_load(export_plan(plan_from_json(est_8b), "sglang", "0.5.6").files["sglang.yaml"])
    assert set(old_plain) <= set(accepted["config_keys"]) and "speculative-draft-model-quantization" not in accepted[
        "config_keys"]
    awq = plan_from_json(_estimate(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm",
                                   draft_precision="int4-awq"))
    old_awq = yaml.safe_load(export_plan(awq, "sglang", "0.5.3", draft_path="/models/1B-AWQ").files["sglang.yaml"])
    assert "speculative-draft-model-quantization" not in old_awq  # read from the checkpoint's quantization_config


INSTRUCT = ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.2-1B-Instruct")


def test_models_are_written_exactly_as_the_plan_names_them(rec_70b, est_8b, tmp_path):
    target, draft = INSTRUCT
    # the names edited by hand: the recorded catalogue releases go with them (else the plan is refused)
    plan = plan_from_json({**est_8b, "target": target, "draft": draft, "target_catalog_id": target,
                           "draft_catalog_id": draft})
    vllm_cfg = yaml.safe_load(export_plan(plan, "vllm").files["vllm.yaml"])
    assert vllm_cfg["model"] == target and json.loads(vllm_cfg["speculative-config"])["model"] == draft
    sg = yaml.safe_load(export_plan(plan, "sglang").files["sglang.yaml"])
    assert (sg["model-path"], sg["speculative-draft-model-path"]) == INSTRUCT
    trt = yaml.safe_load(export_plan(plan, "trtllm").files["trtllm.yaml"])
    assert trt["speculative_config"]["speculative_model"] == draft
    assert f"trtllm-serve {target} " in export_plan(plan, "trtllm").files["trtllm-serve.sh"].replace("\\\n  ", "")
    hf_text = export_plan(plan, "hf").files["hf_assisted.py"]
    assert f"TARGET = {target!r}" in hf_text and f"ASSISTANT = {draft!r}" in hf_text
    variables, _, _ = _parse_script(export_plan(plan, "llamacpp").files["llamacpp-serve.sh"])
    assert variables == {"TARGET_GGUF": "Llama-3.1-70B-Instruct-BF16.gguf", "DRAFT_GGUF": "Llama-3.2-1B-Instruct-BF16.gguf"}
    folder = tmp_path / "my-support-bot-8b"
    local = plan_from_json({**est_8b, "target": str(folder)})
    assert yaml.safe_load(export_plan(local, "vllm").files["vllm.yaml"])["model"] == str(folder)
    alias = plan_from_json({**est_8b, "target": "llama-3.1-8b", "draft": "llama-3.2-1b"})
    aliased = yaml.safe_load(export_plan(alias, "vllm").files["vllm.yaml"])
    assert aliased["model"] == "meta-llama/Llama-3.1-8B"  # a short alias is no Hub id: its entry's id is written


def test_trtllm_decoding_type_follows_the_line(est_8b):
    plan = plan_from_json(est_8b)
    current = yaml.safe_load(export_plan(plan, "trtllm").files["trtllm.yaml"])["speculative_config"]
    assert current["decoding_type"] == "Draft_Target" and "speculative_model" in current
    old = yaml.safe_load(export_plan(plan, "trtllm", "1.1.0").files["trtllm.yaml"])["speculative_config"]
    assert old["decoding_type"] == "DraftTarget" and "speculative_model_dir" in old


def test_facts_come_from_the_plans_catalogue_ids_names_from_its_names(est_qwen_32b):
    """A plan names a fine-tune (or a folder) and records the catalogue release its figures came from."""
    data = {**est_qwen_32b, "target": "acme/qwen-32b-support", "target_catalog_id": "Qwen/Qwen2.5-32B",
            "draft": "/srv/models/qwen-0.5b-ft", "draft_catalog_id": "Qwen/Qwen2.5-0.5B"}
    exp = export_plan(plan_from_json(data), "vllm")
    cfg = yaml.safe_load(exp.files["vllm.yaml"])
    spec = json.loads(cfg["speculative-config"])
    assert (cfg["model"], spec["model"]) == ("acme/qwen-32b-support", "/srv/models/qwen-0.5b-ft")
    assert spec["use_heterogeneous_vocab"] is True  # 152064 vs 151936, read from the catalogue releases
    assert spec["max_model_len"] <= 32768  # the draft's context limit from its release
    with pytest.raises(SpecplanError, match="tokenizer"):
        plan_from_json({**data, "draft_catalog_id": "meta-llama/Llama-3.2-1B"})
    with pytest.raises(SpecplanError, match="control character"):
        plan_from_json({**data, "target_catalog_id": "Qwen/Qwen2.5-32B\n"})
