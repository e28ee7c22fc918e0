"""A checkpoint released in a narrow format (gpt-oss's MXFP4 experts) is planned as released."""

from __future__ import annotations

import pytest

from planner.catalog.lookup import find_model
from planner.catalog.precisions import weight_format
from planner.engines import engine_spec
from planner.plan.recommend import _draft_formats
from planner.priors import alpha_prior, effective_draft_bits


def _spec(name: str):
    return find_model(name).spec


def test_a_native_narrow_format_carries_no_quantization_penalty():
    small = _spec("openai/gpt-oss-20b")
    assert small.weight_format == "mxfp4-moe"
    assert effective_draft_bits(small, weight_format("mxfp4-moe")) == 8.0  # as released
    assert effective_draft_bits(small, weight_format("fp8")) == 8.0  # widening gains nothing
    # AWQ's 4.156 bits are 0.094 bits under the release's 4.25: only that much is penalised.
    assert effective_draft_bits(small, weight_format("int4-awq")) == pytest.approx(8 - (4.25 - (4 + 20 / 128)))
    target = _spec("openai/gpt-oss-120b")
    native = alpha_prior(target, small, weight_format("mxfp4-moe"))
    widened = alpha_prior(target, small, weight_format("bf16"))
    assert native.mid == pytest.approx(widened.mid)


def test_a_bf16_release_keeps_the_per_bit_penalty():
    small = _spec("Qwen/Qwen3-0.6B")
    assert small.weight_format is None
    assert effective_draft_bits(small, weight_format("int4-awq")) == weight_format("int4-awq").bits_per_weight


def test_recommend_tries_the_drafts_own_checkpoint_format_first():
    vllm = engine_spec("vllm")
    assert _draft_formats(_spec("openai/gpt-oss-20b"), vllm)[0] == "mxfp4-moe"
    assert _draft_formats(_spec("Qwen/Qwen3-0.6B"), vllm) == vllm.draft_precisions
    # An engine that does not run the release's format keeps only its own list.
    assert "mxfp4-moe" not in _draft_formats(_spec("openai/gpt-oss-20b"), engine_spec("llamacpp"))
