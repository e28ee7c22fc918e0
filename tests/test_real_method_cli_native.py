"""`specplan export --method ...` for TensorRT-LLM and llama.cpp, checked against those servers' own definitions.

TensorRT-LLM does not install without CUDA, so its exports are checked against its argument
definitions as read in tensorrt_llm/llmapi/llm_args.py (planner/exports/server_args/trtllm.yaml
``decoding_config_fields``, with the source): every speculative_config key the CLI writes must
be a field of the decoding config class its decoding_type names (StrictBaseModel: any other key
is refused), and the values must pass that class's own validators as llm_args.py states them
(EagleDecodingConfig.validate_eagle_config, NGramDecodingConfig.validate_ngram_config,
MTPDecodingConfig.set_max_total_draft_tokens). No server venv is needed for these.

llama.cpp: the ``-serve.sh`` and ``.env`` the CLI writes for an n-gram plan go to the real
llama-server of the b11312 build (.ci/llamacpp_build.sh, SPECPLAN_LLAMACPP_BIN) with a GGUF path
that does not exist. llama-server parses every argument and variable first (common/arg.cpp:
"error while handling argument" / "invalid argument" for a bad one, exit 1 before anything
loads), so a run that gets as far as "failed to load model" has had every option accepted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from planner.cli import main
from planner.exports.versions import server_args
from tests.real_servers.harness import absent

LLAMA8B = ("--target", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100-sxm")
# bf16: the catalogue holds DeepSeek-V3 as a 16-bit checkpoint, and TensorRT-LLM loads fp8 only pre-quantized
DEEPSEEK = ("--target", "deepseek-ai/DeepSeek-V3", "--gpu", "b200", "--gpus", "8")
TRTLLM_CASES = {
    "eagle3-tree": ("--method", "eagle3", *LLAMA8B),
    "eagle3-chain-k3": ("--method", "eagle3", *LLAMA8B, "--k", "3"),
    "mtp": ("--method", "mtp", *DEEPSEEK),
    "ngram": ("--method", "ngram", *LLAMA8B),
    "from-plan": LLAMA8B,
}


def _line(name: str) -> dict:
    return next(e for e in server_args("trtllm")["lines"] if e["name"] == name)


def _trtllm_export(runner, flags: tuple[str, ...], tmp_path: Path) -> dict:
    if flags is TRTLLM_CASES["from-plan"]:
        result = runner.invoke(main, ["recommend", *flags, "--method", "all", "--format", "json"])
        assert result.exit_code == 0, result.output
        (tmp_path / "plan.json").write_text(result.stdout, encoding="utf-8")
        flags = ("--from-plan", str(tmp_path / "plan.json"))
    result = runner.invoke(main, ["export", "--server", "trtllm", "--server-version", "1.2.0", *flags,
                                  "-o", str(tmp_path / "trtllm.yaml")])
    assert result.exit_code == 0, result.output
    return yaml.safe_load((tmp_path / "trtllm.yaml").read_text(encoding="utf-8"))["speculative_config"]


def _validator_errors(spec: dict) -> list[str]:
    """llm_args.py's validators of the class decoding_type names, as written there (empty: accepted)."""
    kind, draft_len = spec["decoding_type"], spec.get("max_draft_len")
    errors = []
    if kind in ("Eagle", "Eagle3"):
        if not draft_len:
            errors.append("max_draft_len must be > 0 for Eagle")
        if spec.get("speculative_model") is None:
            errors.append("Draft model must be provided for EAGLE")
        if spec.get("use_dynamic_tree") or spec.get("dynamic_tree_max_topK") is not None:
            top_k, total = spec.get("dynamic_tree_max_topK"), spec.get("max_total_draft_tokens")
            if not top_k or top_k <= 0:
                errors.append("dynamic_tree_max_topK should be provided")
            elif total is not None and not draft_len <= total <= top_k * draft_len:
                errors.append(f"max_total_draft_tokens {total} outside [{draft_len}, {top_k * draft_len}]")
    elif kind == "NGram":
        if not draft_len:
            errors.append("max_draft_len must be > 0 for NGram")
        if "max_matching_ngram_size" in spec and not (isinstance(spec["max_matching_ngram_size"], int)
                                                      and spec["max_matching_ngram_size"] > 0):
            errors.append("max_matching_ngram_size: PositiveInt")
    elif kind == "MTP":
        # the before-validator moves num_nextn_predict_layers to max_draft_len when max_draft_len is absent
        steps = draft_len if draft_len is not None else spec.get("num_nextn_predict_layers")
        if steps is not None and steps <= 0:
            errors.append("max_draft_len must be > 0 for MTP")
    return errors


@pytest.mark.parametrize("case", TRTLLM_CASES)
def test_trtllm_speculative_config_is_llm_args(case: str, runner, tmp_path: Path) -> None:
    spec = _trtllm_export(runner, TRTLLM_CASES[case], tmp_path)
    fields = _line("1.2+")["decoding_config_fields"]
    kind = spec["decoding_type"]
    assert kind in fields, f"decoding_type {kind} is no class specplan read in llm_args.py"
    allowed = set(fields["DecodingBaseConfig"]) | set(fields[kind])
    assert not set(spec) - allowed, f"not fields of {kind}DecodingConfig: {sorted(set(spec) - allowed)}"
    assert not _validator_errors(spec), _validator_errors(spec)
    if case == "eagle3-chain-k3":
        assert spec["max_draft_len"] == 3 and "use_dynamic_tree" not in spec, spec
    if case in ("eagle3-tree", "from-plan") and kind == "Eagle3":
        assert spec["speculative_model"] == "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"


def test_trtllm_validators_can_refuse() -> None:
    """The validator check is not vacuous: llm_args.py's own bounds refuse a tree larger than topK x steps."""
    spec = {"decoding_type": "Eagle3", "max_draft_len": 3, "speculative_model": "h", "use_dynamic_tree": True,
            "dynamic_tree_max_topK": 4, "max_total_draft_tokens": 13}
    assert _validator_errors(spec) == ["max_total_draft_tokens 13 outside [3, 12]"]


# --- llama.cpp ------------------------------------------------------------------------------------------

def _llama_server() -> Path:
    value = os.environ.get("SPECPLAN_LLAMACPP_BIN")
    if not value:
        absent("SPECPLAN_LLAMACPP_BIN is not set (bash .ci/llamacpp_build.sh prints it)")
    binary = Path(value) / "llama-server"  # type: ignore[arg-type]
    if not binary.is_file():
        absent(f"no llama-server in {value}")
    return binary


def _start(binary: Path, argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """llama-server's output for ``argv`` (flags) and ``env`` (its LLAMA_ARG_* variables), model absent."""
    base = {"PATH": f"{binary.parent}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8",
            "LLAMA_ARG_PORT": "0"}  # a free port, should it bind before loading (the exports set no --port)
    proc = subprocess.run([*argv], env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, "llama-server started without a model file"
    return proc.stdout + proc.stderr


def _parsed(output: str) -> bool:
    return "failed to load model" in output and "error while handling argument" not in output \
        and "invalid argument" not in output


def _llamacpp_export(runner, tmp_path: Path) -> tuple[Path, Path]:
    result = runner.invoke(main, ["export", "--server", "llamacpp", "--server-version", "b11312", "--method", "ngram",
                                  "--target", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "rtx-4090",
                                  "-o", str(tmp_path / "llamacpp-serve.sh")])
    assert result.exit_code == 0, result.output
    return tmp_path / "llamacpp-serve.sh", tmp_path / "llamacpp.env"


@pytest.mark.real_llamacpp
def test_llamacpp_ngram_export_is_parsed_by_llama_server(runner, tmp_path: Path) -> None:
    binary = _llama_server()
    script, env_file = _llamacpp_export(runner, tmp_path)
    assert "--spec-type ngram-simple" in script.read_text(encoding="utf-8")
    missing = {"TARGET_GGUF": str(tmp_path / "absent.gguf")}
    out = _start(binary, ["bash", str(script)], missing, tmp_path)
    assert _parsed(out), out[-2000:]
    variables = dict(row.split("=", 1) for row in env_file.read_text(encoding="utf-8").splitlines()
                     if row and not row.startswith("#"))
    assert variables["LLAMA_ARG_SPEC_TYPE"] == "ngram-simple"
    out = _start(binary, [str(binary)], {**variables, "LLAMA_ARG_MODEL": str(tmp_path / "absent.gguf")}, tmp_path)
    assert _parsed(out), out[-2000:]


@pytest.mark.real_llamacpp
def test_llama_server_rejects_an_unknown_spec_type(tmp_path: Path) -> None:
    """The check can fail: the same start with a --spec-type b11312 lacks stops at the argument."""
    binary = _llama_server()
    out = _start(binary, [str(binary), "-m", str(tmp_path / "absent.gguf"), "--spec-type", "ngram-bogus"], {}, tmp_path)
    assert not _parsed(out) and "unknown speculative type: ngram-bogus" in out, out[-2000:]
