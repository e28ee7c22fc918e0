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


# --- one consistent CLI: exit codes, --format everywhere, help on every option -------------------------

NOTHING_FITS = ["--target", "llama-3.1-70b", "--gpu", "rtx-4090"]
FITS = ["--target", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "4"]


def _walk(group):
    for name, cmd in sorted(group.commands.items()):
        yield name, cmd


def test_every_option_of_every_command_has_help():
    import click

    missing = [f"{name} {p.opts[0]}" for name, cmd in _walk(main) for p in cmd.params
               if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, missing
    assert all((cmd.help or "").strip() for _, cmd in _walk(main))


def test_options_with_quantities_name_their_unit():
    units = {"--memory-gib": "GiB", "--min-memory": "GiB", "--gpu-hour-usd": "USD per GPU-hour", "--budget-s": "seconds",
             "--alpha": "0..1", "--acceptance-rate": "0..1", "--max-median-error": "0..1", "--context": "Tokens",
             "--contexts": "tokens", "--k-max": "tokens", "--max-new-tokens": "Tokens"}
    for name, cmd in _walk(main):
        for p in cmd.params:
            flag = p.opts[0] if p.opts else ""
            if flag in units:
                assert units[flag] in (p.help or ""), f"{name} {flag}: {p.help}"


def test_every_data_printing_command_takes_format():
    for name, cmd in _walk(main):
        assert any(p.name == "fmt" for p in cmd.params), name


def test_exit_status_table_is_in_the_docstring():
    import planner.cli

    for line in ("* 0:", "* 1:", "* 2:", "* 3:", "* 4:"):
        assert line in (planner.cli.__doc__ or "")


@pytest.mark.parametrize("command", ["recommend", "fit", "estimate"])
def test_nothing_fits_exits_1_everywhere(runner, command):
    extra = ["--draft", "llama-3.2-1b"] if command != "recommend" else []
    result = _run(runner, command, *NOTHING_FITS, *extra, "--format", "json")
    assert result.exit_code == 1, result.output
    json.loads(result.stdout)


def test_report_exits_1_when_nothing_fits_and_still_writes(runner, tmp_path):
    out = tmp_path / "r.html"
    result = _run(runner, "report", *NOTHING_FITS, "-o", str(out), "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["wrote"] == [str(out)] and out.exists() and data["verdict"].startswith("Nothing fits")


def test_report_and_recommend_exit_0_when_something_fits(runner, tmp_path):
    assert _run(runner, "recommend", *FITS).exit_code == 0
    result = _run(runner, "report", *FITS, "-o", str(tmp_path / "r.html"), "--format", "yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["estimate"]["draft"]


def test_export_prints_what_it_wrote_as_json(runner, tmp_path):
    result = _run(runner, "export", "--server", "vllm", *FITS, "--draft", "llama-3.2-1b", "-o",
                  str(tmp_path / "vllm.yaml"), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["server"] == "vllm" and data["wrote"] and data["summary"]


def test_calibrate_summary_as_json(runner, tmp_path):
    from pathlib import Path

    server = Path(__file__).parent / "data" / "server"
    out = tmp_path / "cal.yaml"
    result = _run(runner, "calibrate", "--vllm-metrics-before", str(server / "vllm_v1_before.prom"), "--vllm-metrics",
                  str(server / "vllm_v1_after.prom"), "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b",
                  "-o", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["wrote"] == str(out) and data["fitted_acceptance"][0]["alpha"] > 0


def test_objective_cost_without_a_price_is_one_line_exit_2(runner):
    result = _run(runner, "recommend", *FITS, "--objective", "cost")
    assert result.exit_code == 2 and "--gpu-hour-usd" in result.output and len(result.output.strip().splitlines()) == 1


def test_validate_is_quiet_on_a_pipe(runner):
    result = runner.invoke(main, ["validate", "--format", "json"])
    assert result.exit_code in (0, 1)
    assert result.stderr == ""
    json.loads(result.stdout)


# --- what a newcomer asked for in the recommend table -----------------------------------------------------


def _recommend_json(runner, *args):
    result = _run(runner, "recommend", *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_every_gpu_count_shown_has_its_baseline_row(runner):
    data = _recommend_json(runner, *FITS, "--top", "12", "--batch", "4")
    counts = {c["gpus"] for c in data["candidates"] if c["draft"]}
    assert len(counts) > 1
    baselines = {c["gpus"] for c in data["candidates"] if c["draft"] is None}
    assert counts <= baselines


def test_tight_headroom_is_cautioned_and_marked(runner):
    from planner.outputs.cautions import TIGHT_HEADROOM_GIB

    data = _recommend_json(runner, *FITS, "--top", "12", "--batch", "4")
    tight = [c for c in data["candidates"] if c["fits"] and c["headroom_gib"] < TIGHT_HEADROOM_GIB]
    roomy = [c for c in data["candidates"] if c["fits"] and c["headroom_gib"] >= TIGHT_HEADROOM_GIB]
    assert tight and roomy
    assert all(any("GiB free per GPU" in n for n in c["cautions"]) for c in tight)
    assert not any("GiB free per GPU" in n for c in roomy for n in c["cautions"])
    assert " tight" in _run(runner, "recommend", *FITS, "--top", "12", "--batch", "4").output


def test_quantized_draft_rows_name_the_checkpoint_they_need(runner):
    data = _recommend_json(runner, *FITS)
    awq = [c for c in data["candidates"] if c["draft_precision"] == "int4-awq" and c["fits"]]
    assert awq
    for c in awq:
        assert f"pre-quantized int4-awq checkpoint of {c['draft']}" in " ".join(c["cautions"])
    bf16 = [c for c in data["candidates"] if c["draft_precision"] == "bf16"]
    assert all("checkpoint" not in " ".join(c["cautions"]) for c in bf16)


def test_measured_alpha_moves_to_other_draft_precisions_as_derived(runner, tmp_path):
    from pathlib import Path

    from planner.catalog.precisions import weight_format
    from planner.priors import quantization_penalty

    server = Path(__file__).parent / "data" / "server"
    cal = tmp_path / "cal.yaml"
    assert _run(runner, "calibrate", "--vllm-metrics-before", str(server / "vllm_v1_before.prom"), "--vllm-metrics",
                str(server / "vllm_v1_after.prom"), "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b",
                "-o", str(cal)).exit_code == 0
    data = _recommend_json(runner, *FITS, "--top", "40", "--calibration", str(cal))
    rows = {c["draft_precision"]: c for c in data["candidates"] if c["draft"] == "meta-llama/Llama-3.2-1B"
            and c["gpus"] == 4}
    assert rows["bf16"]["alpha_source"] == "calibration"
    assert rows["int4-awq"]["alpha_source"] == rows["fp8"]["alpha_source"] == "derived"
    penalty = quantization_penalty(weight_format("int4-awq"))
    assert rows["int4-awq"]["alpha"] == pytest.approx(rows["bf16"]["alpha"] - penalty, abs=1e-3)
    assert rows["int4-awq"]["speedup"] < rows["bf16"]["speedup"]
    text = _run(runner, "recommend", *FITS, "--top", "40", "--calibration", str(cal)).output
    assert "~" in text and "derived from a measurement" in text


def test_throughput_objective_shows_total_tokens_per_s(runner):
    result = _run(runner, "recommend", *FITS, "--objective", "throughput", "--batch", "8")
    data = _recommend_json(runner, *FITS, "--objective", "throughput", "--batch", "8")
    assert "tok/s all" in result.output
    top = data["candidates"][0]
    assert f"{top['throughput_tokens_per_s']:.1f}" in result.output


def test_warnings_are_printed_once(capsys, monkeypatch):
    from planner.outputs.render import print_warnings, unique

    monkeypatch.setenv("COLUMNS", "80")
    print_warnings(["a [b]", "c", "a [b]"])
    assert capsys.readouterr().out.count("a [b]") == 1
    assert unique(["x", "y", "x"]) == ["x", "y"]
