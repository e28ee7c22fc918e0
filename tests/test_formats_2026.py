"""MXFP4, NVFP4 and block-scaled FP8 weights: their sizes, the tensor path each GPU gives them, the engines that run them.

Expected sizes are worked by hand from the block layouts: OCP MX v1.0 (32 E2M1 elements + one
E8M0 scale), NVIDIA NVFP4 (16 E2M1 + one E4M3 scale), DeepSeek-V3 block FP8 (128 x 128 E4M3 +
one FP32 scale) and ggml's block_mxfp4 (17 bytes per 32 weights).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from planner.catalog.loading import hardware_catalog
from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.precisions import WEIGHT_FORMATS, kv_format, weight_format
from planner.catalog.tensor_paths import TENSOR_PATHS, matmul_dtype, tensor_path
from planner.cli import main
from planner.costmodel import DTYPES, device_profile, model_profile
from planner.engines import engine_spec
from planner.errors import SpecplanError
from planner.exports import export_plan, plan_from_json
from planner.exports.versions import select_line
from planner.footprint import parameter_counts, weight_bytes
from planner.outputs.plan_view import estimate_to_dict
from planner.plan import EstimateInputs, estimate
from planner.requests import FitInputs

FP16 = kv_format("fp16")
NEW = ("mxfp4", "mxfp4-moe", "nvfp4", "fp8-block")


# --- bits per weight from the block layouts ----------------------------------------------------------------


@pytest.mark.parametrize("name,bits", [
    ("mxfp4", 4 + 8 / 32),  # 32 x 4-bit E2M1 + 8-bit E8M0 = 136 bits per 32 weights
    ("mxfp4-moe", 4 + 8 / 32),
    ("nvfp4", 4 + 8 / 16),  # 16 x 4-bit + 8-bit E4M3 = 72 bits per 16
    ("fp8-block", 8 + 32 / (128 * 128)),  # 16384 x 8-bit + one FP32 = 131104 bits per block
    ("mxfp4_moe", 17 * 8 / 32),  # ggml block_mxfp4: 1 byte e + 16 bytes of nibbles
])
def test_bits_per_weight_from_the_block_layout(name, bits):
    assert weight_format(name).bits_per_weight == pytest.approx(bits, rel=1e-12)
    assert weight_format(name).bits_per_weight in (4.25, 4.5, 8.001953125)


def test_experts_only_formats():
    assert weight_format("mxfp4-moe").experts_only and weight_format("mxfp4-moe").non_expert_bits_per_weight == 16
    gguf = weight_format("mxfp4_moe")
    assert gguf.kind == "gguf" and gguf.experts_only and gguf.non_expert_bits_per_weight == 8.5  # Q8_0 elsewhere
    assert not any(weight_format(n).experts_only for n in ("mxfp4", "nvfp4", "fp8-block", "fp8", "bf16"))


def test_every_new_format_cites_its_layout():
    assert "Microscaling" in weight_format("mxfp4").source and "Microscaling" in weight_format("mxfp4-moe").source
    assert "NVFP4" in weight_format("nvfp4").source and "Model Optimizer" in weight_format("nvfp4").source
    assert "DeepSeek-V3 Technical Report" in weight_format("fp8-block").source
    assert "block_mxfp4" in weight_format("mxfp4_moe").source


# --- the tensor path each GPU gives a format ---------------------------------------------------------------


@pytest.mark.parametrize("fmt,gpu,dtype,weight_only", [
    ("nvfp4", "b200", "fp4", False),
    ("mxfp4", "b200", "fp4", False),
    ("nvfp4", "rtx-5090", "fp4", False),  # SM120 has FP4 tensor cores too
    ("mxfp4", "h100-sxm", "fp16", True),  # Marlin / triton w4a16
    ("nvfp4", "h100-sxm", "fp16", True),
    ("mxfp4", "mi300x", "fp16", True),  # CDNA 3: no FP4 matrix cores
    ("fp8-block", "a100-sxm-80gb", "fp16", True),  # Marlin FP8 w8a16
    ("fp8", "a100-sxm-80gb", "fp16", True),
    ("fp8-block", "h100-sxm", "fp8", False),
    ("fp8-block", "mi300x", "fp8", False),
    ("fp8-block", "l40s", "fp8", False),
    ("mxfp4-moe", "b200", "fp16", True),  # gpt-oss experts run with BF16 activations by default
    ("bf16", "a100-sxm-80gb", "fp16", False),
    ("int4-awq", "h100-sxm", "fp16", True),
])
def test_matmul_dtype_per_gpu(fmt, gpu, dtype, weight_only):
    path = matmul_dtype(weight_format(fmt), find_gpu(gpu))
    assert (path.dtype, path.weight_only) == (dtype, weight_only)
    assert fmt in path.reason


def test_fallback_reason_names_the_kernel():
    reason = matmul_dtype(weight_format("fp8-block"), find_gpu("a100-sxm-80gb")).reason
    assert "no fp8 tensor cores on ampere" in reason and "Marlin" in reason


def test_catalogue_peak_figures_agree_with_the_architectures():
    """A GPU with an FP4 (FP8) peak figure is of an architecture whose tensor path the data names.

    The converse does not hold in the catalogue (H100 NVL, most RTX 40 cards and the RTX PRO 6000
    Blackwell have FP8 tensor cores but no FP8 figure), so the architecture decides the path.
    """
    for gpu in hardware_catalog():
        for dtype, figure in (("fp4", gpu.fp4_tensor_tflops), ("fp8", gpu.fp8_tensor_tflops)):
            if figure:
                families = {f for p in TENSOR_PATHS if p.dtype == dtype for f in p.families}
                assert gpu.family in families, f"{gpu.id} ({gpu.family}) has {dtype} {figure} but no {dtype} path"


def test_every_fp8_or_fp4_format_has_a_tensor_path():
    for fmt in WEIGHT_FORMATS:
        if fmt.compute_dtype in ("fp8", "fp4"):
            assert tensor_path(fmt) is not None, fmt.name
    for path in TENSOR_PATHS:
        assert "vllm" in path.source and all(weight_format(n).compute_dtype == path.dtype for n in path.formats)


def test_cost_model_prices_the_path_the_gpu_has():
    qwen = find_model("Qwen/Qwen3-30B-A3B").spec
    vllm = engine_spec("vllm")
    for gpu_id, fmt, dtype, dequantising in (("b200", "nvfp4", "fp4", False), ("h100-sxm", "nvfp4", "fp16", True),
                                              ("a100-sxm-80gb", "fp8-block", "fp16", True),
                                              ("h100-sxm", "fp8-block", "fp8", False)):
        gpu = find_gpu(gpu_id)
        p = model_profile(qwen, weight_format(fmt), FP16, gpu=gpu)
        assert DTYPES[p.dtype_index] == dtype and p.quantized is dequantising
        peak = device_profile(gpu, vllm).peak_flops[p.dtype_index]
        figure = {"fp4": gpu.fp4_tensor_tflops, "fp8": gpu.fp8_tensor_tflops, "fp16": gpu.fp16_tensor_tflops}[dtype]
        assert peak == pytest.approx(figure * 1e12)


def test_experts_only_split_of_linear_bytes():
    """Routed experts at 4.25 bits, every other tensor at the format's non-expert width (by hand)."""
    spec = find_model("Qwen/Qwen3-30B-A3B").spec
    c = parameter_counts(spec)
    hf, gguf, dense = weight_format("mxfp4-moe"), weight_format("mxfp4_moe"), weight_format("mxfp4")
    wb = weight_bytes(spec, hf, c)
    assert wb.experts == pytest.approx(c.experts * 4.25 / 8)
    assert wb.linear == pytest.approx(c.experts * 4.25 / 8 + (c.linear - c.experts) * 2)
    assert wb.embeddings == pytest.approx((c.embedding + c.lm_head) * 2)
    # GGUF MXFP4_MOE keeps the other tensors at Q8_0 (llama-quant.cpp), not 16 bits.
    wg = weight_bytes(spec, gguf, c)
    assert wg.linear == pytest.approx(c.experts * 4.25 / 8 + (c.linear - c.experts) * 8.5 / 8)
    # The experts-only format weighs more than the same bits on every linear layer.
    assert weight_bytes(spec, dense, c).total < wb.total < weight_bytes(spec, weight_format("bf16"), c).total
    # The profile streams one routed expert at the experts' width.
    p = model_profile(spec, hf, FP16)
    assert p.expert_bytes == pytest.approx(wb.experts / spec.moe.num_experts)


# --- engines ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine,runs,refuses", [
    ("vllm", NEW, ("mxfp4_moe",)),
    ("sglang", NEW, ("mxfp4_moe",)),
    ("trtllm", ("nvfp4", "fp8-block", "mxfp4-moe"), ("mxfp4", "mxfp4_moe")),
    ("llamacpp", ("mxfp4_moe",), NEW),
    ("hf", ("mxfp4-moe", "fp8-block"), ("nvfp4", "mxfp4")),
    ("gptfast", (), NEW + ("mxfp4_moe",)),
])
def test_engine_format_lists(engine, runs, refuses):
    formats = engine_spec(engine).weight_formats
    assert set(runs) <= set(formats) and not set(refuses) & set(formats)


@pytest.mark.parametrize("engine,precision", [("gptfast", "mxfp4"), ("llamacpp", "nvfp4"), ("vllm", "mxfp4_moe"),
                                              ("trtllm", "mxfp4")])
def test_a_format_the_engine_does_not_run_is_one_line_exit_2(runner, engine, precision):
    result = runner.invoke(main, ["estimate", "--target", "Qwen/Qwen3-30B-A3B", "--gpu", "h100-sxm",
                                  "--engine", engine, "--precision", precision])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and f"cannot run target precision {precision}" in line


# --- end to end ---------------------------------------------------------------------------------------------


def _estimate_json(runner, precision, gpu="h100-sxm"):
    result = runner.invoke(main, ["estimate", "--target", "Qwen/Qwen3-30B-A3B", "--draft", "Qwen/Qwen3-0.6B",
                                  "--gpu", gpu, "--precision", precision, "--draft-precision", "bf16",
                                  "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_estimate_mxfp4_moe_model_has_fewer_weight_bytes_than_bf16(runner):
    bf16, mxfp4 = _estimate_json(runner, "bf16"), _estimate_json(runner, "mxfp4")
    w16, w4 = bf16["fit"]["per_gpu_gib"]["target_weights"], mxfp4["fit"]["per_gpu_gib"]["target_weights"]
    # Linear layers at 4.25 of 16 bits, the 16-bit embeddings and lm_head (2 x 151936 x 2048) on top.
    counts = parameter_counts(find_model("Qwen/Qwen3-30B-A3B").spec)
    head = (counts.embedding + counts.lm_head) * 2 / 2**30
    assert w4 == pytest.approx((w16 - head) * 4.25 / 16 + head, rel=0.01)
    assert mxfp4["t_target_ms"] < bf16["t_target_ms"]  # memory-bound decode reads fewer bytes
    assert any("no fp4 tensor cores on hopper" in w for w in mxfp4["warnings"])


def test_estimate_on_blackwell_has_no_fallback_warning(runner):
    data = _estimate_json(runner, "nvfp4", gpu="b200")
    assert not any("tensor cores" in w for w in data["warnings"])


# --- exports ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def est_nvfp4() -> dict:
    inp = FitInputs(target="Qwen/Qwen3-30B-A3B", draft="Qwen/Qwen3-0.6B", gpu="b200", precision="nvfp4",
                    draft_precision="bf16")
    return estimate_to_dict(estimate(EstimateInputs(inp)))


def test_checkpoint_native_formats_need_their_checkpoint_and_get_no_quantization_flag(est_nvfp4):
    plan = plan_from_json(est_nvfp4)
    with pytest.raises(SpecplanError, match="--target-path"):
        export_plan(plan, "vllm")  # the catalogue id is the BF16 checkpoint
    folder = "/models/Qwen3-30B-A3B-NVFP4"
    vllm = yaml.safe_load(export_plan(plan, "vllm", target_path=folder).files["vllm.yaml"])
    assert vllm["model"] == folder and "quantization" not in vllm and "dtype" not in vllm
    sglang = yaml.safe_load(export_plan(plan, "sglang", target_path=folder).files["sglang.yaml"])
    assert "quantization" not in sglang and "dtype" not in sglang
    assert sglang["speculative-draft-model-quantization"] == "unquant"  # the BF16 draft next to an FP4 target
    trt = yaml.safe_load(export_plan(plan, "trtllm", target_path=folder).files["trtllm.yaml"])
    assert "dtype" not in trt and "quant_config" not in trt


def test_sglang_names_a_checkpoint_native_draft_by_its_method(est_nvfp4):
    plan = plan_from_json(est_nvfp4)
    accepted = select_line("sglang", None).args["quantizations"]
    for draft, method in (("fp8-block", "fp8"), ("nvfp4", "modelopt_fp4"), ("mxfp4-moe", None), ("mxfp4", None)):
        pair = dataclasses.replace(plan, draft_precision=draft)
        cfg = yaml.safe_load(export_plan(pair, "sglang", target_path="/m/t", draft_path="/m/d").files["sglang.yaml"])
        assert cfg.get("speculative-draft-model-quantization") == method and "quantization" not in cfg
        assert method is None or method in accepted


def test_fit_suggests_fp8_before_the_block_scaled_variant(runner):
    """fp8-block is 0.002 bit wider than fp8; a fit suggestion still offers the format servers make at load."""
    result = runner.invoke(main, ["fit", "--target", "llama-3.1-70b", "--gpu", "h100-sxm", "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["suggestions"][0]["flag"] == "--precision fp8"
