"""specplan export for heads, MTP and lookups (issue 12 point 5): each server's keys per method and line."""

from __future__ import annotations

import shlex

import pytest
import yaml

from planner.cli import main
from planner.exports.versions import server_args

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


def test_tgi_ngram_speculate(runner, tmp_path):
    """TGI's launcher: --speculate N runs n-gram speculation without Medusa heads (server_args/tgi.yaml sources)."""
    r, out = _export(runner, tmp_path, "tgi-serve.sh", "--server", "tgi", "--target", L8, "--gpu", "h100",
                     "--method", "ngram", "--k", "3", "--gpus", "2")
    assert r.exit_code == 0, r.output
    words = [w for w in shlex.split(out.read_text(), comments=True) if w.strip()]  # line continuations
    assert words[words.index("exec") + 1] == "text-generation-launcher"
    flags = dict(zip(words[words.index("exec") + 2::2], words[words.index("exec") + 3::2]))
    assert flags == {"--model-id": L8, "--num-shard": "2", "--dtype": "bfloat16", "--speculate": "3"}
    accepted = next(e for e in server_args("tgi")["lines"] if e["name"] == "1.4+")["cli_flags"]
    assert set(flags) <= set(accepted)


@pytest.mark.parametrize(("args", "words"), [
    (["--method", "eagle3"], ["no eagle3 method", "method ngram (TGI --speculate)"]),
    (["--draft", "meta-llama/Llama-3.2-1B-Instruct"], ["no draft-model speculative decoding", "--method ngram"]),
    (["--method", "ngram", "--server-version", "1.3.4"], ["before 1.4 has no --speculate"]),
])
def test_tgi_refusals_name_the_alternative(runner, tmp_path, args, words):
    r, out = _export(runner, tmp_path, "t.sh", "--server", "tgi", "--target", L8, "--gpu", "h100", *args)
    assert r.exit_code == 2 and not out.exists() and r.stderr.count("\n") == 1, r.output
    assert all(w in r.stderr for w in words), r.stderr
