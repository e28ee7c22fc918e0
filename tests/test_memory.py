"""VRAM fit: components, engine reserves, limits, group sizes and suggestions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog.lookup import find_gpu
from planner.catalog.precisions import kv_format, weight_format
from planner.catalog.schemas import GpuSpec
from planner.engines import engines
from planner.memory import (
    FitRequest,
    draft_tp_degree,
    fit_report,
    max_batch_at_context,
    max_context_at_batch,
    memory_breakdown,
    min_gpus_to_fit,
    unified_memory_gpu_fraction,
    valid_group_sizes,
)
from planner.units import GIB
from tests.conftest import make_model


@pytest.fixture
def h100() -> GpuSpec:
    return find_gpu("h100-sxm")


@pytest.fixture
def apple() -> GpuSpec:
    return GpuSpec.model_validate(dict(
        id="test-mac", name="Test Mac", vendor="apple", family="apple-test", segment="consumer", memory_gib=64,
        memory_type="LPDDR5", memory_bandwidth_gb_s=400, tdp_w=60,
        interconnect={"kind": "none", "bandwidth_gb_s": 0}, source="test",
    ))


def _req(model, gpu, engine="vllm", **kw) -> FitRequest:
    base = dict(target=model, gpu=gpu, engine=engines()[engine], precision=weight_format("bf16"),
                kv=kv_format("fp16"), batch=1, context=4096)
    base.update(kw)
    return FitRequest(**base)


def test_components_by_hand(llama31_8b, h100):
    b = memory_breakdown(_req(llama31_8b, h100, batch=4, context=8192))
    assert b.target_weights == 8_030_261_248 * 2
    assert b.kv_cache == 4 * 8192 * 131072
    assert b.draft_weights == 0
    # vLLM claims 90% of the GPU; the other 10% plus ~1 GiB of CUDA context is unavailable.
    assert b.runtime_reserve == pytest.approx(0.1 * 79.65 * GIB + 1.0 * GIB)
    assert b.total == pytest.approx(b.target_weights + b.kv_cache + b.activations + b.runtime_reserve)


def test_draft_adds_weights_and_kv(llama31_8b, h100):
    draft = make_model(id="t/d", tokenizer="llama3", vocab_size=128256, tokenizer_vocab_size=128256)
    alone = memory_breakdown(_req(llama31_8b, h100))
    both = memory_breakdown(_req(llama31_8b, h100, draft=draft, draft_precision=weight_format("bf16"), k=4))
    assert both.draft_weights > 0
    # Target KV grows by k slots; the draft's KV is added on top.
    assert both.kv_cache > alone.kv_cache * (4096 + 4) / 4096


def test_tensor_parallel_splits_weights(llama31_8b, h100):
    one = memory_breakdown(_req(llama31_8b, h100))
    four = memory_breakdown(_req(llama31_8b, h100, gpus=4))
    assert four.target_weights == pytest.approx(one.target_weights / 4)
    assert four.kv_cache == pytest.approx(one.kv_cache / 4)


def test_layer_split_puts_whole_layers_on_a_gpu(llama31_8b, h100):
    # llama.cpp splits 32 layers over 3 GPUs as 11/11/10: the busiest GPU holds 11.
    one = memory_breakdown(_req(llama31_8b, h100, engine="llamacpp", precision=weight_format("q8_0")))
    three = memory_breakdown(_req(llama31_8b, h100, engine="llamacpp", precision=weight_format("q8_0"), gpus=3))
    assert three.kv_cache == pytest.approx(one.kv_cache * 11 / 32)
    assert 3 in valid_group_sizes(llama31_8b, engines()["llamacpp"], h100)
    assert 3 not in valid_group_sizes(llama31_8b, engines()["vllm"], h100)  # 32 heads not divisible by 3


def test_llamacpp_keeps_input_embedding_on_host(llama31_8b, h100):
    vllm = memory_breakdown(_req(llama31_8b, h100, engine="vllm", precision=weight_format("bf16")))
    lcpp = memory_breakdown(_req(llama31_8b, h100, engine="llamacpp", precision=weight_format("bf16")))
    assert vllm.target_weights - lcpp.target_weights == 128256 * 4096 * 2


def test_draft_without_divisible_heads_is_replicated(llama31_8b, h100):
    draft = make_model(id="t/d", num_attention_heads=14, num_kv_heads=2, head_dim=8, hidden_size=112)
    req = _req(llama31_8b, h100, gpus=4, draft=draft)
    assert draft_tp_degree(req) == 1
    even = make_model(id="t/e")
    assert draft_tp_degree(_req(llama31_8b, h100, gpus=4, draft=even)) == 4


def test_trtllm_reserves_a_share_of_free_memory(llama31_8b, h100):
    b = memory_breakdown(_req(llama31_8b, h100, engine="trtllm"))
    free = 79.65 * GIB - b.target_weights - b.activations - 1.0 * GIB
    assert b.runtime_reserve == pytest.approx(1.0 * GIB + 0.1 * free)


def test_unified_memory_keeps_macos_share(llama31_8b, apple):
    b = memory_breakdown(_req(llama31_8b, apple, engine="llamacpp", precision=weight_format("q4_k_m")))
    assert b.runtime_reserve == pytest.approx(0.3 * GIB + 0.25 * 64 * GIB)
    assert unified_memory_gpu_fraction(16) == pytest.approx(2 / 3)
    assert valid_group_sizes(llama31_8b, engines()["llamacpp"], apple) == [1]


def test_limits_are_tight(llama31_8b, h100):
    req = _req(llama31_8b, h100, context=8192)
    b = max_batch_at_context(req)
    assert fit_report(replace(req, batch=b)).fits and not fit_report(replace(req, batch=b + 1)).fits
    req = _req(llama31_8b, h100, batch=64)
    n = max_context_at_batch(req)
    assert fit_report(replace(req, context=n)).fits and not fit_report(replace(req, context=n + 1)).fits


def test_min_gpus_and_suggestions(h100):
    big = make_model(id="t/big", num_layers=80, hidden_size=8192, num_attention_heads=64, num_kv_heads=8,
                     head_dim=128, intermediate_size=28672, vocab_size=128256, tokenizer_vocab_size=128256,
                     max_context_tokens=131072)
    req = _req(big, h100)
    report = fit_report(req)
    assert not report.fits
    assert report.min_gpus_to_fit == min_gpus_to_fit(req) == 2
    kinds = [s.kind for s in report.suggestions]
    assert kinds[0] == "precision" and "gpus" in kinds
    assert "kv_precision" not in kinds  # KV is small at batch 1: a smaller KV format cannot rescue it
    for s in report.suggestions:
        fixed = {
            "precision": lambda: replace(req, precision=weight_format(s.value), draft_precision=req.precision),
            "gpus": lambda: replace(req, gpus=s.value),
        }[s.kind]()
        assert fit_report(fixed).fits and s.headroom_gib >= 0


def test_kv_format_is_suggested_when_kv_dominates(llama31_8b, h100):
    report = fit_report(_req(llama31_8b, h100, batch=60, context=8192))
    assert not report.fits
    assert report.suggestions[0].kind == "kv_precision" and report.suggestions[0].value == "fp8"


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 64), context=st.integers(1, 65536), extra=st.integers(1, 64))
def test_memory_grows_with_batch_and_context(batch, context, extra):
    m = make_model(max_context_tokens=1 << 20)
    gpu = find_gpu("h100-sxm")
    base = memory_breakdown(_req(m, gpu, batch=batch, context=context))
    assert memory_breakdown(_req(m, gpu, batch=batch + extra, context=context)).total >= base.total
    assert memory_breakdown(_req(m, gpu, batch=batch, context=context + extra)).total >= base.total
    # KV cache is exactly linear in the number of sequences.
    assert memory_breakdown(_req(m, gpu, batch=2 * batch, context=context)).kv_cache == pytest.approx(2 * base.kv_cache)
