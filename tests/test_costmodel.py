"""Cost model: pass times by hand, bounds, tensor parallel, MoE traffic, overheads, validation targets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.precisions import kv_format, weight_format
from planner.costmodel import (
    decode_cost,
    device_profile,
    expected_experts_touched,
    model_profile,
    pass_cost,
    peak_tflops,
    roofline_decode_s,
    stack_profiles,
    verify_cost,
)
from planner.engines import engine_spec
from planner.validate import median_abs_error, validate

H100 = find_gpu("h100-sxm")
VLLM = engine_spec("vllm")
FP16 = kv_format("fp16")


def _profile(name="llama-3.1-8b", fmt="bf16", shard=1):
    return model_profile(find_model(name).spec, weight_format(fmt), FP16, shard)


def test_decode_time_by_hand():
    p, d = _profile(), device_profile(H100, VLLM)
    cost = decode_cost(p, d, batch=1, context=1000)
    c = VLLM.cost_for("hbm")
    weights = 8_030_261_248 * 2 - 128256 * 4096 * 2  # the input embedding is a lookup, not streamed
    assert float(cost.weights_s) == pytest.approx(weights / (3350e9 * c.eta_mem))
    kv_bytes = 131072 * (1000 + 1)  # read the cache, write one new token
    assert float(cost.kv_s) == pytest.approx(kv_bytes / (3350e9 * c.eta_kv))
    assert float(cost.overhead_s) == pytest.approx((32 * c.tau_layer_us + c.tau_step_us) * 1e-6)
    assert float(cost.comm_s) == 0
    assert not bool(cost.compute_bound)


def test_decode_slows_as_context_grows():
    p, d = _profile(), device_profile(H100, VLLM)
    times = decode_cost(p, d, 1, np.array([0, 4096, 32768, 131072])).total_s
    assert np.all(np.diff(times) > 0)


def test_verify_flat_at_small_batch_then_compute_bound():
    p, d = _profile(), device_profile(H100, VLLM)
    t1 = float(decode_cost(p, d, 1, 512).total_s)
    assert float(verify_cost(p, d, 4, 1, 512).total_s) / t1 < 1.02  # memory-bound: 5 tokens cost ~1
    big = verify_cost(p, d, 7, 512, 128)
    assert bool(big.compute_bound)
    assert float(big.total_s) > 2 * float(decode_cost(p, d, 512, 128).total_s) / 1.5


def test_tensor_parallel_divides_bytes_and_adds_allreduce():
    one = decode_cost(_profile(shard=1), device_profile(H100, VLLM, 1), 1, 512)
    four = decode_cost(_profile(shard=4), device_profile(H100, VLLM, 4), 1, 512)
    assert float(four.weights_s) == pytest.approx(float(one.weights_s) / 4, rel=1e-9)
    # 2 all-reduces per layer x 32 layers, each at least the link latency
    assert float(four.comm_s) >= 64 * VLLM.cost_for("hbm").link_latency_us * 1e-6


def test_layer_split_does_not_add_single_stream_bandwidth():
    llama = engine_spec("llamacpp")
    gpu = find_gpu("rtx-4090")
    p = _profile(fmt="q4_k_m")
    one = float(decode_cost(p, device_profile(gpu, llama, 1), 1, 512).total_s)
    two = float(decode_cost(p, device_profile(gpu, llama, 2), 1, 512).total_s)
    assert two > one  # the same bytes through one GPU at a time, plus a hand-off


def test_moe_reads_only_touched_experts():
    p = _profile("qwen3-30b-a3b")
    d = device_profile(H100, VLLM)
    assert float(expected_experts_touched(128, 8, 1)) == pytest.approx(8, rel=1e-9)
    assert float(expected_experts_touched(128, 8, 10_000)) == pytest.approx(128)
    small, large = (float(decode_cost(p, d, b, 0).weights_s) for b in (1, 256))
    assert large > 5 * small  # a big batch touches nearly every expert


def test_small_draft_dominated_by_fixed_overheads():
    """DESIGN.md: a 1B draft costs ~5% of a 70B target pass, not 1/70."""
    d = device_profile(H100, VLLM, 4)
    target = float(decode_cost(_profile("llama-3.1-70b", shard=4), d, 1, 2048).total_s)
    draft = float(decode_cost(_profile("llama-3.2-1b", shard=4), d, 1, 2048).total_s)
    c = draft / target
    bytes_ratio = 1.235e9 / 70.55e9
    assert c > 2 * bytes_ratio and 0.03 < c < 0.2


def test_peak_fallbacks():
    assert peak_tflops(H100, "fp8") == 1979
    assert peak_tflops(find_gpu("a100-sxm-80gb"), "fp8") == 312  # no FP8 path: FP16 tensor cores
    no_tensor = find_gpu("rtx-3070")
    assert peak_tflops(no_tensor, "fp16") == pytest.approx(2 * no_tensor.fp32_tflops)


def test_roofline_is_faster_than_model():
    p = _profile()
    assert roofline_decode_s(p, H100) < float(decode_cost(p, device_profile(H100, VLLM)).total_s)


def test_stacked_profiles_price_like_single_ones():
    profiles = [_profile(n) for n in ("llama-3.1-8b", "llama-3.2-1b", "qwen3-30b-a3b")]
    devices = [device_profile(find_gpu(g), VLLM) for g in ("h100-sxm", "a100-sxm-80gb")]
    stacked = pass_cost(stack_profiles(profiles, (1, 3)), stack_profiles(devices, (2, 1)), 4, 1000, 3)
    for i, dev in enumerate(devices):
        for j, prof in enumerate(profiles):
            assert float(stacked.total_s[i, j]) == pytest.approx(float(pass_cost(prof, dev, 4, 1000, 3).total_s))


@settings(max_examples=50, deadline=None)
@given(batch=st.integers(1, 512), context=st.integers(0, 100_000), n=st.integers(1, 17))
def test_pass_time_monotone(batch, context, n):
    p, d = _profile(), device_profile(H100, VLLM)
    base = float(pass_cost(p, d, batch, context, n).total_s)
    assert float(pass_cost(p, d, batch + 1, context, n).total_s) >= base
    assert float(pass_cost(p, d, batch, context + 100, n).total_s) >= base
    assert float(pass_cost(p, d, batch, context, n + 1).total_s) >= base


def test_validation_decode_target_met_and_better_than_roofline():
    """Issue 3: median |error| <= 15% for decode tokens/s, far better than a pure roofline.

    Issue 9 moved the speculative rows to planner.validation (prior-only and with measured
    acceptance, both public sets): their targets are reported by `specplan validate` and their
    coverage is tested in test_validation.py; no test pins their error while the model changes.
    """
    report = validate()
    decode = report.of_kind("decode")
    assert len(decode) >= 200 and len(report.speculative) >= 3
    assert median_abs_error([c.error for c in decode]) <= 0.15
    assert median_abs_error([c.roofline_error for c in decode]) > 2 * median_abs_error([c.error for c in decode])
    assert all(s.reason for s in report.skipped)


@pytest.mark.parametrize("source_name, catalogue_id", [
    ("Meta-Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"), ("Llama 3.1 8B", "meta-llama/Llama-3.1-8B"),
    ("Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"), ("llama-2-7b-chat", "meta-llama/Llama-2-7b-hf"),
])
def test_validation_reads_model_names_as_sources_write_them(source_name, catalogue_id):
    from planner.validate import _model

    # Instruct/chat names resolve to their own release; validation needs its architecture.
    assert _model(source_name).architecture_id == catalogue_id


@pytest.mark.parametrize("source_name, gpu_id", [
    ("NVIDIA GeForce RTX 3060 12GB", "rtx-3060-12gb"), ("Apple M1 Max 32-Core GPU 64GB", "m1-max"),
    ("NVIDIA H100 PCIe 80GB", "h100-pcie"), ("AMD Radeon RX 7900 XTX 24GB", "rx-7900-xtx"),
])
def test_validation_reads_hardware_names_as_sources_write_them(source_name, gpu_id):
    from planner.validate import _gpu

    assert _gpu(source_name).id == gpu_id
