"""Methods as first-class plans (issue 12 point 1): fit, estimate and recommend with heads, MTP and lookups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.cli import main
from planner.costmodel import decode_cost
from planner.errors import SpecplanError
from planner.memory import fit_report
from planner.methods.rounds import method_profiles
from planner.plan import EstimateInputs, RecommendInputs, estimate, recommend
from planner.requests import FitInputs, build_fit_request

L8 = "meta-llama/Llama-3.1-8B-Instruct"
E3_8B = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
QWEN7 = "Qwen/Qwen2.5-7B-Instruct"


def _req(method, target=L8, **kw):
    return build_fit_request(FitInputs(target=target, gpu="h100-sxm", method=method, **kw))[0]


# --- memory (fit) ---------------------------------------------------------------------------------------


def test_eagle3_head_memory_by_hand():
    """EAGLE-3 Llama-3.1-8B head: fc 3*4096*4096 + attention (q 8192x4096, k/v 2 x 8192x1024, o 4096^2) + MLP
    3*4096*14336 + 4 norms + lm_head 4096*32000 = 424,689,664 fp16 parameters, plus d2t (8 B x 32000) and t2d
    (1 B x 128256); its KV: one layer, 2 x 8 heads x 128 x 2 B = 4096 B per token."""
    req = _req("eagle3", k=5)
    breakdown = fit_report(req).breakdown
    assert breakdown.draft_weights == 424_689_664 * 2 + 8 * 32_000 + 128_256
    lookup = fit_report(_req("ngram", k=5)).breakdown  # the target's KV for context + k tokens, no head
    assert breakdown.kv_cache - lookup.kv_cache == pytest.approx(1 * (4096 + 5) * 4096)
    plain = fit_report(_req(None, k=5)).breakdown  # no speculation: no k verify slots (32 layers x 4 KiB per token)
    assert lookup.kv_cache - plain.kv_cache == pytest.approx(5 * 32 * 4096)


def test_head_splits_over_the_target_group():
    one = fit_report(_req("eagle3")).breakdown
    req2 = build_fit_request(FitInputs(target=L8, gpu="h100-sxm", gpus=2, method="eagle3"))[0]
    two = fit_report(req2).breakdown
    assert two.draft_weights == pytest.approx(one.draft_weights / 2)


def test_lookup_holds_nothing_on_the_gpu():
    for method in ("ngram", "suffix"):
        b = fit_report(_req(method, k=5)).breakdown
        assert b.draft_weights == 0.0
        # its k proposals still need verify slots in the KV cache (k extra tokens per sequence)
        assert b.kv_cache == pytest.approx(fit_report(_req("eagle3", k=5)).breakdown.kv_cache - (4096 + 5) * 4096)


def _mtp_weights(engine):
    req = build_fit_request(FitInputs(target="deepseek-ai/DeepSeek-V3", gpu="h200-sxm", gpus=8, method="mtp",
                                      precision="fp8", engine=engine))[0]
    return fit_report(req).breakdown.draft_weights


def test_mtp_memory_is_the_nextn_module():
    """DeepSeek-V3's MTP module: 11.5B unique parameters (README_WEIGHTS.md) at fp8 over 8 GPUs, ~1.35 GiB each;
    SGLang points it at the target's embedding and head, vLLM loads the module's own shared_head.head
    (129,280 x 7,168 in bf16, deepseek_mtp.py SharedHead) beside the target's."""
    sglang = _mtp_weights("sglang")
    assert 11.0e9 / 8 < sglang < 12.5e9 / 8  # 1 byte per fp8 weight
    assert _mtp_weights("vllm") - sglang == pytest.approx(129_280 * 7_168 * 2 / 8)


# --- estimate -------------------------------------------------------------------------------------------


def test_lookup_costs_nothing_per_token():
    e = estimate(EstimateInputs(FitInputs(target=L8, gpu="h100-sxm", method="ngram", k=4), k_given=True))
    assert float(e.prices.c) == 0.0
    assert e.method == "ngram" and e.settings == {"method": "ngram", "head": None, "k": 4}
    # the round costs one verify pass of k + 1 tokens plus the loop's host time
    assert float(e.prices.r) >= 1.0


def test_head_step_costs_more_than_its_bytes():
    """c of a head step: at least its bytes over the target's (both memory-bound at batch 1), plus launches."""
    req = _req("eagle3", k=3)
    e = estimate(EstimateInputs(FitInputs(target=L8, gpu="h100-sxm", method="eagle3", k=3), k_given=True))
    assert e.settings["head"] == E3_8B
    head_bytes = fit_report(req).breakdown.draft_weights
    target_bytes = fit_report(req).breakdown.target_weights
    assert float(e.prices.c) > 0.9 * head_bytes / target_bytes
    assert float(e.prices.c) < 0.5


def test_eagle3_fusion_is_read_once_per_round():
    """EAGLE-3 fuses the target's features once per round: per step, the fc is spread over k steps."""
    req = _req("eagle3")
    ks = np.array([1, 4])
    p = method_profiles(req, 1, None, ks)
    t = decode_cost(p.proposer, p.proposer_device, 1, 2048).total_s
    assert t[0] > t[1]
    fc_bytes = 3 * 4096 * 4096 * 2
    assert t[0] - t[1] == pytest.approx(fc_bytes * 0.75 / (p.proposer_device.bandwidth_bytes_s * p.proposer_device.eta_mem),
                                        rel=1e-6)


def test_measured_mean_accepted_length_sets_alpha():
    """tau = 3.0 at k = 3 (a chain): 1 + a + a^2 + a^3 = 3 -> a = 0.8105 (exact inversion)."""
    e = estimate(EstimateInputs(FitInputs(target=L8, gpu="h100-sxm", method="eagle3", k=3), k_given=True,
                                mean_accepted_length=3.0))
    a = e.alpha.mid
    assert 1 + a + a * a + a**3 == pytest.approx(3.0, abs=1e-6)
    assert e.alpha.source == "user"
    assert float(e.prices.mean_accepted_length) == pytest.approx(3.0, abs=1e-6)


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "words"), [
    ({"target": QWEN7, "method": "eagle3"}, ["no eagle3 head is catalogued", "--method draft (--draft", "--method ngram"]),
    ({"target": QWEN7, "method": "mtp"}, ["no MTP layers are catalogued", "num_nextn_predict_layers"]),
    ({"target": L8, "method": "eagle3", "engine": "llamacpp"}, ["llama.cpp does not serve --method eagle3",
                                                                "--method ngram"]),
    ({"target": QWEN7, "method": "eagle3", "head": E3_8B}, ["trained for meta-llama/Llama-3.1-8B-Instruct"]),
    ({"target": L8, "method": "eagle3", "draft": "meta-llama/Llama-3.2-1B-Instruct"}, ["runs no draft model"]),
    ({"target": L8, "method": "draft"}, ["--method draft needs --draft", "--method eagle3"]),
    ({"target": L8, "method": "ngram", "head": E3_8B}, ["runs no model: drop --head"]),
    ({"target": L8, "method": "eagle3", "head": "nobody/no-such-head"}, ["no eagle3 head 'nobody/no-such-head'"]),
])
def test_refusals_name_the_reason_and_the_alternative(kw, words):
    target = kw.pop("target")
    with pytest.raises(SpecplanError) as err:
        build_fit_request(FitInputs(target=target, gpu="h100-sxm", **kw))
    text = str(err.value)
    assert "\n" not in text
    for w in words:
        assert w in text


def test_cli_refusal_is_one_line_exit_2(runner):
    r = runner.invoke(main, ["estimate", "--target", QWEN7, "--gpu", "h100", "--method", "eagle3"])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "nearest alternatives" in r.stderr


def test_head_from_a_local_folder(tmp_path, runner):
    cfg = {"architectures": ["LlamaForCausalLMEagle3"], "hidden_size": 4096, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "num_hidden_layers": 1, "vocab_size": 128256,
           "draft_vocab_size": 32000, "torch_dtype": "float16"}
    (tmp_path / "head").mkdir()
    (tmp_path / "head" / "config.json").write_text(json.dumps(cfg))
    r = runner.invoke(main, ["estimate", "--target", L8, "--gpu", "h100", "--head", str(tmp_path / "head"),
                             "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["method"] == "eagle3" and d["head"] == str((tmp_path / "head").resolve())
    catalogued = json.loads(runner.invoke(main, ["estimate", "--target", L8, "--gpu", "h100", "--method", "eagle3",
                                                 "--format", "json"]).stdout)
    assert d["fit"]["per_gpu_gib"]["draft_weights"] == catalogued["fit"]["per_gpu_gib"]["draft_weights"]


# --- recommend ------------------------------------------------------------------------------------------


def test_recommend_all_ranks_every_method_with_no_speculation():
    rec = recommend(RecommendInputs(FitInputs(target=L8, gpu="h100-sxm"), method="all"))
    methods = {c.method for c in rec.candidates}
    assert {None, "draft", "eagle", "eagle3", "ngram", "suffix"} <= methods
    for c in rec.candidates:
        if c.method is not None:
            assert c.settings["method"] == c.method and c.settings["k"] == c.k
    speeds = [c.tokens_per_s for c in rec.candidates if c.fits]
    assert speeds[:-1] == sorted(speeds[:-1], reverse=True) or rec.candidates[-1].method is None


def test_recommend_default_adds_methods_only_where_heads_exist():
    with_heads = recommend(RecommendInputs(FitInputs(target=L8, gpu="h100-sxm")))
    assert any(c.method == "eagle3" for c in with_heads.candidates)
    without = recommend(RecommendInputs(FitInputs(target=QWEN7, gpu="h100-sxm")))
    assert {c.method for c in without.candidates} <= {None, "draft"}


def test_recommend_one_method_refused_when_unavailable(runner):
    r = runner.invoke(main, ["recommend", "--target", QWEN7, "--gpu", "h100", "--method", "eagle3"])
    assert r.exit_code == 2 and "no eagle3 head is catalogued" in r.stderr


def test_recommend_json_rows_carry_method_and_settings(runner):
    r = runner.invoke(main, ["recommend", "--target", "deepseek-ai/DeepSeek-V3", "--gpu", "h200", "--gpus", "8",
                             "--precision", "fp8", "--method", "all", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["candidates"]
    mtp = next(c for c in rows if c["method"] == "mtp")
    assert mtp["settings"] == {"method": "mtp", "head": "deepseek-ai/DeepSeek-V3", "k": mtp["k"]}
    assert any(c["method"] is None for c in rows)
    assert mtp["per_gpu_gib"]["draft_weights"] > 1.0


def test_report_for_a_method(tmp_path, runner):
    out = tmp_path / "r.html"
    r = runner.invoke(main, ["report", "--target", "deepseek-ai/DeepSeek-V3", "--gpu", "h200", "--gpus", "8",
                             "--precision", "fp8", "--method", "mtp", "-o", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "MTP" in html and "proposer weights" in html


# --- trees ----------------------------------------------------------------------------------------------


def test_sglang_plans_a_tree_at_batch_1_and_a_chain_at_batch_256():
    """Verify of 32 tokens costs ~one decode step at batch 1 (weights dominate) but several at batch 256
    (compute-bound GEMMs): the best SGLang shape is a wide tree alone, a chain under load."""
    def plan(batch):
        return estimate(EstimateInputs(FitInputs(target=L8, gpu="h100-sxm", method="eagle3", engine="sglang",
                                                 batch=batch)))
    small, large = plan(1), plan(256)
    assert small.settings["topk"] > 1 and small.settings["num_draft_tokens"] > small.settings["num_steps"] + 1
    assert large.settings.get("topk", 1) == 1
    assert float(small.prices.r) < 1.1 < float(large.prices.r)
    # the tree's verify slots are in the fit: num_draft_tokens - 1 tokens beyond the context
    assert small.fit.request.k == small.settings["num_draft_tokens"] - 1
    chain = estimate(EstimateInputs(FitInputs(target=L8, gpu="h100-sxm", method="eagle3", engine="vllm", batch=1)))
    assert "topk" not in chain.settings  # vLLM serves chains only (engines.yaml tree_methods)
    assert float(small.prices.speedup) > float(chain.prices.speedup)


def test_recommend_rows_carry_the_tree_shape():
    rec = recommend(RecommendInputs(FitInputs(target=L8, gpu="h100-sxm", engine="sglang"), method="eagle3"))
    row = next(c for c in rec.candidates if c.method == "eagle3")
    assert {"num_steps", "topk", "num_draft_tokens"} <= set(row.settings)
    assert row.settings["num_steps"] == row.k
