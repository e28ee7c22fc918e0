"""Issue 11 catalogue entries: releases, hand-computed counts, tokenizer identities, drafts, the no-draft line."""

from __future__ import annotations

import re

import pytest

from planner.catalog.lookup import find_model
from planner.drafts import draft_candidates
from planner.footprint import parameter_counts
from planner.plan import RecommendInputs, recommend
from planner.requests import FitInputs

RELEASES = {
    "openai/gpt-oss-20b": "reasoning", "openai/gpt-oss-120b": "reasoning",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": "instruct", "meta-llama/Llama-4-Scout-17B-16E": "base",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": "instruct", "meta-llama/Llama-4-Maverick-17B-128E": "base",
    "Qwen/Qwen3-235B-A22B": "instruct", "Qwen/Qwen3-235B-A22B-Instruct-2507": "instruct",
    "google/gemma-3-1b-it": "instruct", "google/gemma-3-4b-it": "instruct", "google/gemma-3-12b-it": "instruct",
    "google/gemma-3-27b-it": "instruct", "google/gemma-3-1b-pt": "base", "google/gemma-3-27b-pt": "base",
    "mistralai/Mistral-Small-24B-Instruct-2501": "instruct", "mistralai/Mistral-Small-24B-Base-2501": "base",
    "mistralai/Mistral-Nemo-Instruct-2407": "instruct", "mistralai/Mistral-Nemo-Base-2407": "base",
    "microsoft/phi-4": "instruct", "Qwen/QwQ-32B": "reasoning",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": "reasoning", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": "reasoning",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": "reasoning", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "reasoning",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": "reasoning", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": "reasoning",
}


def spec(name):
    return find_model(name).spec


@pytest.mark.parametrize("release, kind", RELEASES.items())
def test_each_release_is_its_own_entry_with_its_hub_id(release, kind):
    s = spec(release)
    assert (s.id, s.catalog_id, s.kind) == (release, release, kind)
    sources = [s.source] if isinstance(s.source, str) else s.source
    assert f"huggingface.co/{release}/blob/main/config.json" in sources[0]


def test_qwen3_235b_counts_by_hand():
    # 94 layers x (attention 2 x 4096 x 8192 + 2 x 4096 x 512 + q/k norms 2 x 128, 128 experts x
    # 3 x 4096 x 1536 + router 4096 x 128, 2 norms x 4096) + 2 x 151936 x 4096 + final norm.
    layer = 2 * 4096 * 8192 + 2 * 4096 * 512 + 256 + 128 * 3 * 4096 * 1536 + 4096 * 128 + 2 * 4096
    total = 94 * layer + 2 * 151936 * 4096 + 4096
    m = spec("Qwen/Qwen3-235B-A22B")
    assert total == m.total_params == parameter_counts(m).total == 235_093_634_560


def test_r1_distill_qwen_1_5b_is_qwen2_5_1_5b_with_an_untied_head():
    distill, base = spec("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"), spec("Qwen/Qwen2.5-1.5B")
    assert base.tie_word_embeddings and not distill.tie_word_embeddings
    assert distill.total_params == base.total_params + 151936 * 1536 == parameter_counts(distill).total


def test_gemma3_vision_params_are_siglip_plus_projector_by_hand():
    # SigLIP so400m at 896 px: 27 layers of hidden 1152, MLP 4304; patch 14 -> 64 x 64 = 4096 positions.
    layer = 4 * (1152 * 1152 + 1152) + (1152 * 4304 + 4304) + (4304 * 1152 + 1152) + 2 * 2 * 1152
    siglip = 27 * layer + (3 * 14 * 14 * 1152 + 1152) + 4096 * 1152 + 2 * 1152
    assert siglip == 416_866_032
    for size, hidden in (("4b", 2560), ("12b", 3840), ("27b", 5376)):
        m = spec(f"google/gemma-3-{size}-it")
        assert m.vision_params == siglip + 1152 * hidden + 1152  # mm_input_projection + mm_soft_emb_norm
        # The Hub total is the text formula plus the vision tower, exactly (footprint counts both).
        counts = parameter_counts(m)
        assert counts.vision == m.vision_params and counts.total == m.total_params
    assert spec("google/gemma-3-1b-it").vision_params == 0


def test_llama4_vision_params_by_hand():
    # 34 layers of hidden 1408 (biased attention and MLP 5632, two LayerNorms), class + position
    # embeddings (577 x 1408), the 14x14x3 patch projection, pre/post LayerNorms, the vision
    # adapter 5632 -> 4096 -> 4096 and the projector 4096 -> 5120, none biased.
    layer = 4 * (1408 * 1408 + 1408) + (1408 * 5632 + 5632) + (5632 * 1408 + 1408) + 2 * 2 * 1408
    vision = 34 * layer + 1408 + 577 * 1408 + 588 * 1408 + 4 * 1408 + 5632 * 4096 + 4096 * 4096 + 4096 * 5120
    for name in ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Maverick-17B-128E-Instruct"):
        assert spec(name).vision_params == vision == 871_932_416


def test_llama4_layout_fields():
    scout, maverick = spec("llama-4-scout"), spec("llama-4-maverick")
    for m in (scout, maverick):
        # attention_chunk_size 8192 on the RoPE layers, every fourth layer NoPE and global.
        assert (m.chunked_attention_tokens, m.chunked_attention_layers, m.num_layers) == (8192, 36, 48)
    assert (scout.moe.layer_step, maverick.moe.layer_step) == (1, 2)
    assert maverick.total_params - maverick.vision_params == 400_711_848_960  # text backbone, formula


def test_gpt_oss_fields():
    for name, layers in (("openai/gpt-oss-20b", 24), ("openai/gpt-oss-120b", 36)):
        m = spec(name)
        assert m.attention_sinks and m.attention_bias and m.attention_out_bias
        assert m.moe.router_linear_bias and m.moe.expert_bias and m.weight_format == "mxfp4-moe"
        assert (m.sliding_window_tokens, m.sliding_window_layers) == (128, layers // 2)


def test_tokenizer_identities():
    assert spec("llama-4-scout").tokenizer == spec("llama-4-maverick").tokenizer != spec("llama-3.2-1b").tokenizer
    assert spec("google/gemma-3-1b-it").tokenizer == spec("google/gemma-3-27b-it").tokenizer != spec("gemma-2-2b").tokenizer
    # V3-Tekken (NeMo) and V7-Tekken (Small 3): the BPE ranks were not shown equal, so no shared identity.
    assert spec("mistralai/Mistral-Nemo-Instruct-2407").tokenizer != spec("mistralai/Mistral-Small-24B-Instruct-2501").tokenizer
    distills = {spec(f"deepseek-ai/DeepSeek-R1-Distill-Qwen-{s}").tokenizer for s in ("1.5B", "7B", "14B", "32B")}
    assert distills == {"deepseek-r1-distill-qwen2"} and spec("Qwen/Qwen2.5-32B").tokenizer == "qwen2"
    assert spec("deepseek-ai/DeepSeek-R1-Distill-Llama-8B").tokenizer == spec("deepseek-ai/DeepSeek-R1-Distill-Llama-70B").tokenizer


@pytest.mark.parametrize("target, draft", [
    ("openai/gpt-oss-120b", "openai/gpt-oss-20b"),
    ("google/gemma-3-27b-it", "google/gemma-3-1b-it"),
    ("google/gemma-3-12b-it", "google/gemma-3-1b-it"),
    ("Qwen/Qwen3-235B-A22B", "Qwen/Qwen3-0.6B"),
    ("Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-1.7B"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"),
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
])
def test_drafts_share_the_targets_token_ids(target, draft):
    drafts = [d.id for d in draft_candidates(spec(target)).drafts]
    assert draft in drafts
    assert all(spec(d).tokenizer == spec(target).tokenizer for d in drafts)


def test_r1_distill_targets_get_no_plain_qwen_or_llama_draft():
    drafts = {d.id for d in draft_candidates(spec("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")).drafts}
    assert drafts == {"deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                      "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"}


@pytest.mark.parametrize("target", ["microsoft/phi-4", "mistralai/Mistral-Small-24B-Instruct-2501",
                                    "mistralai/Mistral-Nemo-Instruct-2407"])
def test_recommend_says_when_no_same_tokenizer_draft_exists(target):
    rec = recommend(RecommendInputs(FitInputs(target=target, gpu="h200-sxm", gpus=1), top=5))
    assert all(c.draft is None for c in rec.candidates)
    assert rec.verdict == "do not use speculation: the catalogue has no smaller draft with the target's token ids"
    line = [w for w in rec.warnings if w.startswith("no same-tokenizer draft")]
    assert len(line) == 1 and f"{target}'s tokenizer ({spec(target).tokenizer})" in line[0]
    assert "n-gram" in line[0] and "EAGLE" in line[0] and "MTP" in line[0]
    assert not re.search(r"\d(\.\d+)?x\b", line[0])  # names the draft-free proposers, claims no speedup
