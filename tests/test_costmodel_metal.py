"""Apple Metal (unified memory) kernel regimes of llama.cpp: quantised mat-vec ALU-bound per row.

Kernel-level checks against public op timings (tests/data/metal_matmul_rows.yaml) and the
end-to-end direction of llama.cpp issue #10594 (F16 target gains, Q4_K_M target loses).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.precisions import kv_format, weight_format
from planner.cli import main
from planner.costmodel import decode_cost, device_profile, model_profile, pass_cost, verify_cost
from planner.costmodel.gemm import quant_matmul_s
from planner.engines import engine_spec
from planner.errors import UnknownNameError

DATA = yaml.safe_load((Path(__file__).parent / "data" / "metal_matmul_rows.yaml").read_text())
FP16 = kv_format("fp16")
B4077 = "metal-b4077-2024-11"


def _bench(gpu: str, kernels: str | None = None):
    return device_profile(find_gpu(gpu), engine_spec("llamacpp"), role="bench", kernels=kernels)


def _mlx_device():
    """The M3 Ultra's Metal line with MLX qmv's ops per weight in place of llama.cpp's."""
    row = DATA["mlx_4265"]
    gpu = find_gpu(row["gpu"])
    d = _bench(row["gpu"])
    return row, dataclasses.replace(d, quant_matvec_dot_flops=gpu.fp32_tflops * 1e12 * 2 / row["ops_per_weight"])


def test_unified_memory_gets_the_metal_line_and_cuda_keeps_its_own():
    llama = engine_spec("llamacpp")
    assert llama.kernels_for(None, "unified") is llama.kernels["metal-current"]
    assert llama.kernels_for(None, "hbm") is llama.kernels["current"]
    with pytest.raises(UnknownNameError):
        llama.kernels_for("metal-current", "hbm")
    with pytest.raises(UnknownNameError):
        device_profile(find_gpu("m1-pro"), llama, kernels="pr5625-2024-03")


@pytest.mark.parametrize("m", [2, 4, 7, 8])
def test_mlx_4265_small_m_ratios_from_the_alu_cost_per_row(m):
    """MLX qmv on an M3 Ultra: t(M) / t(1) = 1.83 / 3.26 / 5.28 / 6.12 at M = 2 / 4 / 7 / 8 within 15%."""
    row, d = _mlx_device()
    params = row["out_features"] * row["in_features"]
    t1 = row["q4_ms"][1] * 1e-3  # the benchmark's (cache-hot) load
    t = quant_matmul_s(np.float64(t1), 2.0 * params, np.float64(m), d)[0]
    assert float(t) / t1 == pytest.approx(row["q4_ms"][m] / row["q4_ms"][1], rel=0.15)


def test_mlx_4265_bf16_stays_flat_while_4_bit_grows():
    """16-bit weights keep the memory-bound mat-vec up to 8 rows on Metal: no per-row dot cost."""
    p = model_profile(find_model("llama-3.1-8b").spec, weight_format("fp16"), FP16)
    q = model_profile(find_model("llama-3.1-8b").spec, weight_format("q4_0"), FP16)
    d = _bench("m3-ultra")
    ratio = {name: float(pass_cost(m, d, 1, 0, 8).total_s / pass_cost(m, d, 1, 0, 1).total_s)
             for name, m in (("fp16", p), ("q4_0", q))}
    assert ratio["fp16"] < 1.1 < 2.0 < ratio["q4_0"]


def test_llamacpp_25250_mul_mv_ext_row_reproduced():
    """The row the llama.cpp line's 17.6 ops per weight came from: 2 rows = 1.81 x 1 row on an M4 Pro."""
    row = DATA["llamacpp_25250"]
    d = _bench(row["gpu"])
    t1 = row["q4_0_us"][1] * 1e-6
    t2 = quant_matmul_s(np.float64(t1), 2.0 * row["out_features"] * row["in_features"], np.float64(2), d)[0]
    assert float(t2) / t1 == pytest.approx(row["q4_0_us"][2] / row["q4_0_us"][1], rel=0.05)


def test_b4077_line_pays_the_32_row_tile_from_two_rows():
    """Issue #4624 (M3 Max, Mistral 7B Q4_0, builds of that period): 2, 4 and 8 rows all cost ~4.9 x 1 row."""
    row = DATA["llamacpp_4624"]
    p = model_profile(find_model(row["model"]).spec, weight_format(row["format"]), FP16)
    old, new = _bench(row["gpu"], B4077), _bench(row["gpu"])
    rates = row["pp_tok_s"]
    t1 = float(pass_cost(p, old, 1, 0, 1).total_s)
    for n in (2, 4, 8):
        measured = n * rates[1] / rates[n]
        assert float(pass_cost(p, old, 1, 0, n).total_s) / t1 == pytest.approx(measured, rel=0.2), n
    # Since PR #10581 the same 2-row pass takes mul_mv_ext: one load plus one row of ALU work.
    assert float(pass_cost(p, new, 1, 0, 2).total_s) / float(pass_cost(p, new, 1, 0, 1).total_s) < 2.0


def test_kquants_below_four_rows_reread_the_weights_per_row():
    """Q4_K/Q5_K/Q6_K have no mul_mv_ext below 4 rows: 2 and 3 rows cost 2 and 3 weight passes."""
    p = model_profile(find_model("meta-llama/Llama-2-7b-chat-hf").spec, weight_format("q4_k_m"), FP16)
    d = _bench("m4-pro")
    weights = {n: float(sum(pass_cost(p, d, 1, 0, n).operators[k] for k in ("qkv", "o", "mlp", "lm_head")))
               for n in (1, 2, 3)}
    assert weights[2] == pytest.approx(2 * weights[1]) and weights[3] == pytest.approx(3 * weights[1])


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 8), gpu=st.sampled_from(["m1-pro", "m2-ultra", "m4-pro", "m3-max-40c"]))
def test_metal_matvec_row_cost_is_params_times_ops_over_fp32(rows, gpu):
    """Legacy blocks up to 8 rows: t(rows) - t(1) = (rows - 1) x params x 17.6 / FP32 peak, per weight operator."""
    p = model_profile(find_model("llama-3.1-8b").spec, weight_format("q8_0"), FP16)
    d = _bench(gpu)
    ops = engine_spec("llamacpp").kernels["metal-current"].quant_matvec_ops_per_weight
    fp32 = find_gpu(gpu).fp32_tflops * 1e12
    extra = {k: float(pass_cost(p, d, 1, 0, rows).operators[k] - pass_cost(p, d, 1, 0, 1).operators[k])
             for k in ("qkv", "mlp")}
    assert extra["qkv"] == pytest.approx((rows - 1) * p.qkv_params * ops / fp32, rel=1e-9, abs=1e-15)
    assert extra["mlp"] == pytest.approx((rows - 1) * p.mlp_params * ops / fp32, rel=1e-9, abs=1e-15)


def _estimate(runner, precision: str) -> dict:
    row = DATA["llamacpp_10594"]
    args = ["estimate", "--target", row["target"], "--draft", row["draft"], "--draft-precision", row["draft_format"],
            "--precision", precision, "--gpu", row["gpu"], "--engine", "llamacpp", "--context", "512",
            # build 4077 predates llama-server's speculation (PR #10455): the run used llama-speculative
            "--server-version", "llama-speculative", "--format", "json"]
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


def test_llamacpp_10594_f16_target_gains_q4_k_m_target_loses(runner):
    """Issue #10594 (Mac mini M4 Pro, tiny draft): F16 1.55x, Q4_K_M 0.55x; `estimate` gets both directions."""
    f16, q4 = _estimate(runner, "fp16"), _estimate(runner, "q4_k_m")
    assert f16["speedup"] > 1.2
    assert q4["speedup"] < 1.0
    assert q4["r"] > f16["r"]


def test_llamacpp_10594_on_its_own_build_verify_costs_a_tile():
    """On build 4077 (mul_mm from 2 rows) the Q4_K_M verify costs > 3 decode steps at any k, F16 < 1.5."""
    row = DATA["llamacpp_10594"]
    gpu = find_gpu(row["gpu"])
    d = device_profile(gpu, engine_spec("llamacpp"), kernels=B4077)
    spec = find_model(row["target"]).spec
    for fmt, lo, hi in (("q4_k_m", 3.0, np.inf), ("fp16", 1.0, 1.5)):
        p = model_profile(spec, weight_format(fmt), FP16)
        t = float(decode_cost(p, d, 1, 512).total_s)
        for k in (1, 3, 5):
            r = float(verify_cost(p, d, k, 1, 512).total_s) / t
            assert lo < r < hi, (fmt, k, r)
