"""specplan export for heads, MTP and lookups (issue 12 point 5): each server's keys per method and line."""

from __future__ import annotations

import pytest
import yaml

from planner.cli import main

L8 = "meta-llama/Llama-3.1-8B-Instruct"
E3 = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"


def _export(runner, tmp_path, name, *args):
    out = tmp_path / name
    r = runner.invoke(main, ["export", *args, "-o", str(out)])
    return r, out


def test_vllm_eagle3_config(runner, tmp_path):
    r, out = _export(runner, tmp_path, "v.yaml", "--server", "vllm", "--target", L8, "--gpu", "h100", "--method", "eagle3")
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load(out.read_text())
    spec = cfg["speculative-config"]
    spec = yaml.safe_load(spec) if isinstance(spec, str) else spec
    assert spec["method"] == "eagle3" and spec["model"] == E3 and spec["num_speculative_tokens"] >= 1


def test_sglang_eagle3_tree(runner, tmp_path):
    r, out = _export(runner, tmp_path, "s.yaml", "--server", "sglang", "--engine", "sglang", "--target", L8, "--gpu",
                     "h100", "--method", "eagle3")
    assert r.exit_code == 0, r.output
    cfg = yaml.safe_load(out.read_text())
    assert cfg["speculative-algorithm"] == "EAGLE3" and cfg["speculative-draft-model-path"] == E3
    steps, topk, tokens = (cfg[f"speculative-{k}"] for k in ("num-steps", "eagle-topk", "num-draft-tokens"))
    assert topk > 1 and steps + 1 < tokens <= topk + (steps - 1) * topk * topk + 1  # the planned tree, as SGLang takes it


def test_llamacpp_ngram_spec_type(runner, tmp_path):
    r, out = _export(runner, tmp_path, "l.sh", "--server", "llamacpp", "--engine", "llamacpp", "--target", L8, "--gpu",
                     "rtx-4090", "--precision", "q4_k_m", "--method", "ngram")
    assert r.exit_code == 0, r.output
    assert "--spec-type" in out.read_text() and "ngram" in out.read_text()


def test_hf_prompt_lookup(runner, tmp_path):
    r, out = _export(runner, tmp_path, "h.py", "--server", "hf", "--engine", "hf", "--target", L8, "--gpu", "h100",
                     "--method", "ngram")
    assert r.exit_code == 0, r.output
    assert "prompt_lookup_num_tokens=" in out.read_text()


@pytest.mark.parametrize(("args", "words"), [
    (["--server", "vllm", "--method", "suffix", "--server-version", "0.9.2"], ["no suffix method", "nearest alternative"]),
    (["--server", "llamacpp", "--engine", "llamacpp", "--method", "eagle3"], ["does not serve --method eagle3"]),
])
def test_release_or_server_without_the_method_is_refused(runner, tmp_path, args, words):
    r, out = _export(runner, tmp_path, "x", *args, "--target", L8, "--gpu", "h100")
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.count("\n") == 1
    for w in words:
        assert w in r.stderr


def test_recommend_plan_round_trip(runner, tmp_path):
    plan = tmp_path / "plan.json"
    r = runner.invoke(main, ["recommend", "--target", L8, "--gpu", "h100", "--method", "all", "--format", "json"])
    assert r.exit_code == 0
    plan.write_text(r.stdout)
    r, out = _export(runner, tmp_path, "v.yaml", "--server", "vllm", "--from-plan", str(plan))
    assert r.exit_code == 0, r.output
    assert "eagle3" in out.read_text()
