"""Parameter counts, weight bytes and KV bytes checked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog.precisions import kv_format, weight_format
from planner.catalog.schemas import MoESpec
from planner.footprint import (
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    kv_heads_per_gpu,
    parameter_counts,
    weight_bytes,
)
from tests.conftest import make_model

# The totals of every catalogue entry against its published count: tests/test_catalog_sources.py.


def test_llama31_8b_exact(llama31_8b):
    # 8,030,261,248 parameters in the safetensors metadata of meta-llama/Llama-3.1-8B.
    assert parameter_counts(llama31_8b).total == 8_030_261_248


def test_deepseek_v3_total_and_active(deepseek_v3):
    # DeepSeek-V3 technical report: 671B total, 37B activated per token (MTP module excluded).
    counts = parameter_counts(deepseek_v3)
    assert counts.total == pytest.approx(671e9, rel=0.005)
    assert counts.active == pytest.approx(37e9, rel=0.03)


def test_streamed_excludes_input_embedding(llama31_8b):
    c = parameter_counts(llama31_8b)
    assert c.streamed_per_token == c.active - 128256 * 4096


def test_kv_bytes_gqa_by_hand(llama31_8b):
    # 2 (K,V) x 32 layers x 8 kv heads x 128 dims x 2 bytes = 131072 B/token.
    assert kv_cache_bytes_per_token(llama31_8b, kv_format("fp16")) == 131072


def test_kv_bytes_mha_by_hand(llama2_7b):
    # 2 x 32 layers x 32 heads x 128 dims x 2 bytes = 524288 B/token (0.5 MiB).
    assert kv_cache_bytes_per_token(llama2_7b, kv_format("fp16")) == 524288


def test_kv_bytes_mla_by_hand(deepseek_v3):
    # MLA caches the latent: 61 layers x (512 + 64) x 2 bytes = 70272 B/token.
    assert kv_cache_bytes_per_token(deepseek_v3, kv_format("bf16")) == 70272
    # ...and tensor parallelism replicates it rather than splitting it.
    assert kv_cache_bytes_per_token(deepseek_v3, kv_format("bf16"), tp=8) == 70272


def test_kv_tensor_parallel_splits_and_replicates(llama31_8b):
    full = kv_cache_bytes_per_token(llama31_8b, kv_format("fp16"))
    assert kv_cache_bytes_per_token(llama31_8b, kv_format("fp16"), tp=4) == full / 4
    assert kv_heads_per_gpu(llama31_8b, 16) == 1  # 8 KV heads over 16 GPUs: each holds one copy


def test_kv_formats_scale_bytes(llama31_8b):
    fp16 = kv_cache_bytes_per_token(llama31_8b, kv_format("fp16"))
    assert kv_cache_bytes_per_token(llama31_8b, kv_format("fp8")) == fp16 / 2
    assert kv_cache_bytes_per_token(llama31_8b, kv_format("q8_0")) == pytest.approx(fp16 * 8.5 / 16)
    assert kv_cache_bytes_per_token(llama31_8b, kv_format("q4_0")) == pytest.approx(fp16 * 4.5 / 16)


def test_sliding_window_caps_windowed_layers():
    m = make_model(num_layers=4, sliding_window_tokens=100, sliding_window_layers=2)
    per_layer_token = 2 * 2 * 8 * 2
    assert kv_cache_bytes(m, kv_format("fp16"), 1000) == per_layer_token * (2 * 1000 + 2 * 100)
    assert kv_cache_bytes(m, kv_format("fp16"), 1000, sliding_window=False) == per_layer_token * 4 * 1000
    assert kv_cache_bytes(m, kv_format("fp16"), 50) == per_layer_token * 4 * 50


def test_weight_bytes_by_format(llama31_8b):
    total = 8_030_261_248
    assert weight_bytes(llama31_8b, weight_format("bf16")).total == total * 2
    assert weight_bytes(llama31_8b, weight_format("q8_0")).total == pytest.approx(total * 8.5 / 8)
    # AWQ keeps embeddings, lm_head and norms in 16 bits; only the block matrices are 4-bit.
    c = parameter_counts(llama31_8b)
    awq = weight_bytes(llama31_8b, weight_format("int4-awq"))
    assert awq.embeddings == (c.embedding + c.lm_head) * 2
    assert awq.linear == pytest.approx(c.linear * (4 + 20 / 128) / 8)


def test_gguf_q4_k_m_matches_published_file_size(llama31_8b):
    # measurements.yaml A-XD-001: Meta-Llama-3-8B Q4_K_M file is 4.58 GiB (llama-bench "size").
    gib = weight_bytes(llama31_8b, weight_format("q4_k_m")).total / 2**30
    assert gib == pytest.approx(4.58, rel=0.03)


def test_gated_and_plain_mlp():
    gated = parameter_counts(make_model()).mlp
    plain = parameter_counts(make_model(mlp_gated=False)).mlp
    assert gated * 2 == plain * 3


def test_qwen_biases_and_qk_norm_counted():
    base = parameter_counts(make_model()).attention
    bias = parameter_counts(make_model(attention_bias=True)).attention
    norm = parameter_counts(make_model(qk_norm=True)).attention
    layers, q_dim, kv_dim, head_dim = 4, 64, 16, 8
    assert bias - base == layers * (q_dim + 2 * kv_dim)
    assert norm - base == layers * 2 * head_dim


def test_tied_embeddings_counted_once():
    tied, untied = make_model(tie_word_embeddings=True), make_model()
    assert parameter_counts(untied).total - parameter_counts(tied).total == 1024 * 64


@st.composite
def architectures(draw):
    kv = draw(st.sampled_from([1, 2, 4, 8]))
    heads = kv * draw(st.integers(1, 8))
    moe = None
    if draw(st.booleans()):
        experts = draw(st.integers(2, 64))
        moe = MoESpec(num_experts=experts, experts_per_token=draw(st.integers(1, experts)),
                      expert_intermediate_size=draw(st.integers(8, 512)))
    return make_model(
        num_layers=draw(st.integers(1, 96)), hidden_size=draw(st.integers(8, 8192)), num_attention_heads=heads,
        num_kv_heads=kv, head_dim=draw(st.sampled_from([32, 64, 128, 256])),
        intermediate_size=draw(st.integers(8, 30000)), tie_word_embeddings=draw(st.booleans()),
        attention_bias=draw(st.booleans()), qk_norm=draw(st.booleans()), moe=moe,
    )


@settings(max_examples=200, deadline=None)
@given(m=architectures())
def test_count_invariants(m):
    c = parameter_counts(m)
    assert c.streamed_per_token < c.active <= c.total
    assert (c.active == c.total) == (m.moe is None or m.moe.experts_per_token == m.moe.num_experts)
    # Weights in a 4-bit format never exceed 16-bit weights, and bytes are positive.
    assert 0 < weight_bytes(m, weight_format("q4_0")).total < weight_bytes(m, weight_format("bf16")).total
    # KV bytes grow linearly with tokens when there is no window.
    one = kv_cache_bytes(m, kv_format("fp16"), 1)
    assert kv_cache_bytes(m, kv_format("fp16"), 1000) == pytest.approx(1000 * one)
