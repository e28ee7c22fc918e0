"""Shared fixtures: a CLI runner and small hand-written model specs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from planner.catalog.schemas import MLASpec, MoESpec, ModelSpec


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def make_model(**overrides) -> ModelSpec:
    """A small Llama-shaped spec; override any field."""
    base = dict(
        id="test/tiny-llama", family="llama", generation="t", architecture="llama", tokenizer="tiny",
        tokenizer_vocab_size=1000, vocab_size=1024, num_layers=4, hidden_size=64, num_attention_heads=8,
        num_kv_heads=2, head_dim=8, intermediate_size=128, tie_word_embeddings=False, max_context_tokens=2048,
        source="test fixture",
    )
    base.update(overrides)
    return ModelSpec.model_validate(base)


@pytest.fixture
def llama2_7b() -> ModelSpec:
    """Llama-2-7B as in its config.json (MHA: 32 heads, 32 KV heads)."""
    return make_model(id="t/llama2-7b", tokenizer="llama2", tokenizer_vocab_size=32000, vocab_size=32000,
                      num_layers=32, hidden_size=4096, num_attention_heads=32, num_kv_heads=32, head_dim=128,
                      intermediate_size=11008, max_context_tokens=4096)


@pytest.fixture
def llama31_8b() -> ModelSpec:
    """Llama-3.1-8B as in its config.json (GQA: 32 heads, 8 KV heads)."""
    return make_model(id="t/llama3.1-8b", tokenizer="llama3", tokenizer_vocab_size=128256, vocab_size=128256,
                      num_layers=32, hidden_size=4096, num_attention_heads=32, num_kv_heads=8, head_dim=128,
                      intermediate_size=14336, max_context_tokens=131072)


@pytest.fixture
def deepseek_v3() -> ModelSpec:
    """DeepSeek-V3 as in its config.json (MoE + MLA, MTP layer excluded)."""
    return make_model(
        id="t/deepseek-v3", architecture="deepseek_v3", tokenizer="deepseek-v3", tokenizer_vocab_size=128815,
        vocab_size=129280, num_layers=61, hidden_size=7168, num_attention_heads=128, num_kv_heads=128,
        head_dim=128, intermediate_size=18432, max_context_tokens=163840,
        moe=MoESpec(num_experts=256, experts_per_token=8, expert_intermediate_size=2048, num_shared_experts=1,
                    shared_expert_intermediate_size=2048, first_dense_layers=3, router_bias=True),
        mla=MLASpec(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128),
    )
