"""`specplan export` on the command line: planning flags or --from-plan, refusals, no overwrite."""

from __future__ import annotations

import json
import shlex

import yaml

from planner.cli import main


def test_export_vllm_from_flags_writes_config_and_command(runner, tmp_path):
    out = tmp_path / "vllm.yaml"
    result = runner.invoke(main, ["export", "--server", "vllm", "--target", "llama-3.1-70b", "--gpu", "h100-sxm",
                                  "--gpus", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(out.read_text())
    spec = json.loads(cfg["speculative-config"])
    assert cfg["model"] == "meta-llama/Llama-3.1-70B" and cfg["tensor-parallel-size"] == 4
    assert spec["method"] == "draft_model" and spec["num_speculative_tokens"] >= 1
    script = (tmp_path / "vllm-serve.sh").read_text()
    assert "vllm serve meta-llama/Llama-3.1-70B" in script and "specplan predicted" in out.read_text()
    again = runner.invoke(main, ["export", "--server", "vllm", "--target", "llama-3.1-70b", "--gpu", "h100-sxm",
                                 "--gpus", "4", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr


def test_export_from_a_saved_plan(runner, tmp_path):
    plan = runner.invoke(main, ["recommend", "--target", "qwen2.5-32b", "--gpu", "rtx-4090", "--engine", "llamacpp",
                                "--format", "json"])
    path = tmp_path / "plan.json"
    path.write_text(plan.stdout)
    out = tmp_path / "llama.sh"
    result = runner.invoke(main, ["export", "--server", "llamacpp", "--from-plan", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    words = shlex.split(out.read_text(), comments=True)  # -o names the main file itself
    assert "llama-server" in words and "99" in words
    assert (tmp_path / "llama.env").is_file() and "llama.env" in result.stdout


def test_export_refusals(runner, tmp_path):
    ollama = runner.invoke(main, ["export", "--server", "ollama", "--target", "llama-3.1-8b", "--gpu", "h100-sxm",
                                  "-o", str(tmp_path / "x")])
    assert ollama.exit_code == 2 and "llama.cpp" in ollama.stderr
    no_fit = runner.invoke(main, ["export", "--server", "vllm", "--target", "qwen2.5-72b", "--gpu", "h100-sxm",
                                  "-o", str(tmp_path / "y.yaml")])
    assert no_fit.exit_code == 2 and "fits" in no_fit.stderr
    old = runner.invoke(main, ["export", "--server", "vllm", "--server-version", "0.12.0", "--target", "llama-3.1-8b",
                               "--gpu", "h100-sxm", "-o", str(tmp_path / "z.yaml")])
    assert old.exit_code == 2 and "draft" in old.stderr
    assert list(tmp_path.iterdir()) == []
