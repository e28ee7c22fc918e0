"""The command line: output fields, exit codes and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import yaml

from planner.cli import main

FIT_KEYS = {"fits", "per_gpu_gib", "capacity_gib", "headroom_gib", "max_batch_at_context",
            "max_context_at_batch", "min_gpus_to_fit", "suggestions"}
GIB_KEYS = {"target_weights", "draft_weights", "kv_cache", "activations", "runtime_reserve", "total"}


def _run(runner, *args):
    return runner.invoke(main, list(args))


def _fit_json(runner, *args):
    result = _run(runner, "fit", *args, "--format", "json")
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def test_fit_json_has_every_field_and_exit_0(runner):
    result, data = _fit_json(runner, "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b",
                             "--gpu", "h100-sxm", "--gpus", "2")
    assert result.exit_code == 0, result.output
    assert FIT_KEYS <= data.keys() and GIB_KEYS == data["per_gpu_gib"].keys()
    assert data["fits"] is True and data["headroom_gib"] > 0
    assert data["per_gpu_gib"]["draft_weights"] > 0
    assert data["suggestions"] == []


def test_fit_that_does_not_fit_exits_1_and_still_reports(runner):
    result, data = _fit_json(runner, "--target", "llama-3.1-70b", "--gpu", "h100-sxm")
    assert result.exit_code == 1
    assert data["fits"] is False and data["headroom_gib"] < 0
    assert data["min_gpus_to_fit"] == 2
    assert data["suggestions"][0]["flag"].startswith("--precision")


def test_fit_yaml_and_table(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--format", "yaml")
    assert result.exit_code == 0 and yaml.safe_load(result.stdout)["fits"] is True
    table = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm")
    assert table.exit_code == 0 and "FITS" in table.stdout and "target weights" in table.stdout


def test_unknown_gpu_lists_three_nearest(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxn")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "unknown GPU 'h100-sxn'" in line
    assert len(line.split("nearest: ")[1].split(", ")) == 3


def test_unknown_model_lists_three_nearest(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-7b", "--gpu", "h100-sxm")
    assert result.exit_code == 2
    assert "unknown model 'llama-3.1-7b'; nearest: " in result.stderr
    assert "meta-llama/Llama-3.1-8B" in result.stderr


@pytest.mark.parametrize("flag", ["--batch", "--context", "--gpus"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_counts_below_one_exit_2(runner, flag, value):
    result = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", flag, value)
    assert result.exit_code == 2
    assert f"{flag} must be at least 1" in result.stderr and result.stderr.count("\n") == 1


def test_tokenizer_mismatch_refused_then_overridden(runner):
    args = ["fit", "--target", "llama-3.1-8b", "--draft", "qwen2.5-0.5b", "--gpu", "h100-sxm"]
    refused = _run(runner, *args)
    assert refused.exit_code == 2
    assert "tokenizer" in refused.stderr and "--allow-tokenizer-mismatch" in refused.stderr
    allowed = _run(runner, *args, "--allow-tokenizer-mismatch", "--format", "json")
    assert allowed.exit_code == 0
    assert any("tokenizer" in w for w in json.loads(allowed.stdout)["warnings"])


def test_padded_vocab_difference_is_compatible(runner):
    # Qwen2.5-0.5B (151936 rows) and Qwen2.5-72B (152064 rows) share one tokenizer.
    result, data = _fit_json(runner, "--target", "qwen2.5-72b", "--draft", "qwen2.5-0.5b",
                             "--gpu", "h100-sxm", "--gpus", "4")
    assert result.exit_code == 0, result.stderr
    assert data["warnings"] == []


def test_llama3_and_llama2_are_not_compatible(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-70b", "--draft", "meta-llama/Llama-2-7b-hf",
                  "--gpu", "h100-sxm", "--gpus", "2")
    assert result.exit_code == 2 and "tokenizer" in result.stderr


def test_context_beyond_model_limit_exit_2(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--context", "10000000")
    assert result.exit_code == 2 and "exceeds" in result.stderr


def test_engine_precision_mismatch_exit_2(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm",
                  "--precision", "q4_k_m")
    assert result.exit_code == 2 and "vLLM cannot run target precision q4_k_m" in result.stderr


def test_invalid_tensor_parallel_group_exit_2(runner):
    result = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "3")
    assert result.exit_code == 2 and "valid: 1, 2, 4, 8" in result.stderr


def test_unknown_engine_and_precision_exit_2(runner):
    bad_engine = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vlm")
    assert bad_engine.exit_code == 2 and "unknown engine 'vlm'; nearest: vllm" in bad_engine.stderr
    bad_prec = _run(runner, "fit", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--precision", "int3")
    assert bad_prec.exit_code == 2 and "unknown weight precision 'int3'" in bad_prec.stderr


def test_model_from_config_path(runner, tmp_path):
    src = __import__("pathlib").Path(__file__).parent / "data" / "configs" / "meta-llama--Llama-3.1-8B.json"
    (tmp_path / "config.json").write_text(src.read_text())
    from_disk, d = _fit_json(runner, "--target", str(tmp_path), "--gpu", "h100-sxm")
    from_cat, c = _fit_json(runner, "--target", "llama-3.1-8b", "--gpu", "h100-sxm")
    assert from_disk.exit_code == 0
    assert d["per_gpu_gib"] == c["per_gpu_gib"]


def test_gpus_and_models_listing_filters(runner):
    gpus = json.loads(_run(runner, "gpus", "--vendor", "nvidia", "--min-memory", "80", "--format", "json").stdout)
    assert gpus and all(g["vendor"] == "nvidia" and g["memory_gib"] >= 80 for g in gpus)
    models = json.loads(_run(runner, "models", "--family", "qwen", "--format", "json").stdout)
    assert models and all(m["family"] == "qwen" for m in models)
    table = _run(runner, "models")
    assert table.exit_code == 0 and "models" in table.stdout


def test_help_lists_commands(runner):
    result = _run(runner, "--help")
    assert result.exit_code == 0
    for cmd in ("fit", "gpus", "models"):
        assert cmd in result.stdout


def test_apple_defaults_to_llamacpp_and_refuses_vllm(runner):
    result, data = _fit_json(runner, "--target", "qwen2.5-32b", "--draft", "qwen2.5-0.5b", "--gpu", "m4-max",
                             "--context", "8192")
    assert result.exit_code == 0, result.stderr
    assert data["engine"] == "llamacpp" and data["precision"] == "q4_k_m"
    refused = _run(runner, "fit", "--target", "qwen2.5-7b", "--gpu", "m4-max", "--engine", "vllm")
    assert refused.exit_code == 2 and "vLLM does not run on" in refused.stderr
    grouped = _run(runner, "fit", "--target", "qwen2.5-7b", "--gpu", "m4-max", "--gpus", "2")
    assert grouped.exit_code == 2


def test_apple_memory_option_must_be_sold(runner):
    ok, data = _fit_json(runner, "--target", "qwen2.5-7b", "--gpu", "m4-max", "--memory-gib", "64")
    assert ok.exit_code == 0 and data["capacity_gib"] == 64
    bad = _run(runner, "fit", "--target", "qwen2.5-7b", "--gpu", "m4-max", "--memory-gib", "100")
    assert bad.exit_code == 2 and "is sold with" in bad.stderr


def test_readme_main_command_runs_and_fits(runner):
    readme = (__import__("pathlib").Path(__file__).parent.parent / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("pip install -c constraints.txt . && specplan "))
    args = command.split("&& specplan ", 1)[1].split()
    result = _run(runner, *args)
    assert result.exit_code == 0, result.output
