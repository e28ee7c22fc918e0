"""Which GPUs run a weight format's matmuls on their own tensor cores, and what runs elsewhere.

FP8 and FP4 formats name a tensor-core dtype (``WeightFormat.compute_dtype``) that only some
architectures have. Where a GPU lacks it, vLLM and SGLang still load the checkpoint but run
weight-only kernels (Marlin, triton w4a16): the weights are dequantised to BF16 in the kernel
and the matmul runs at the FP16/BF16 tensor rate. ``TENSOR_PATHS`` is that rule as data, one
entry per native path; ``matmul_dtype`` applies it to one format on one GPU.

The architecture decides the path, not the catalogue figure: several entries of parts that
do have FP8 tensor cores (H100 NVL, RTX 40 cards, RTX PRO 6000 Blackwell) carry no FP8 peak
figure. There the path is native and the peak falls back to the FP16 figure
(``planner.costmodel.profiles.peak_tflops``), which ``MatmulPath.reason`` says.
"""

from __future__ import annotations

from typing import Literal

from planner.catalog.precisions import ComputeDtype, WeightFormat
from planner.catalog.schemas import Frozen, GpuSpec

__all__ = ["TensorPath", "MatmulPath", "TENSOR_PATHS", "DTYPE_BITS", "tensor_path", "own_path", "matmul_dtype"]

# Width of the operands each tensor path multiplies, bits: a format stored narrower than the
# path it runs on is unpacked in the kernel (weight-only), one as wide or wider is not.
DTYPE_BITS: dict[str, int] = {"fp16": 16, "fp8": 8, "int8": 8, "fp4": 4}

PeakFigure = Literal["fp8_tensor_tflops", "fp4_tensor_tflops"]

_VLLM_Q = "vllm-project/vllm vllm/model_executor/layers/quantization/"
_FP4_SOURCE = (
    _VLLM_Q + "utils/nvfp4_utils.py cutlass_fp4_supported() -> csrc .../fp4/nvfp4_scaled_mm_entry.cu "
    "cutlass_scaled_mm_supports_fp4: compute capability >= 100 (SM100 B200/GB200/B300, SM120 RTX 50 / RTX PRO "
    "Blackwell) and CUDA >= 12.8; elsewhere " + _VLLM_Q + "utils/marlin_utils_fp4.py is_fp4_marlin_supported() "
    "(capability >= 80): FP4 weight-only Marlin (W4A16, BF16 activations). " + _VLLM_Q + "mxfp4.py "
    "get_mxfp4_backend: SM100 FlashInfer, SM90-SM10x triton_kernels, otherwise Marlin. AMD CDNA 4 Architecture "
    "whitepaper (MI350X/MI355X, 2025): MFMA instructions for MXFP4/MXFP6 with E8M0 block scales; CDNA 3 and "
    "earlier have none"
)


class TensorPath(Frozen):
    """A tensor-core dtype, the architectures that have it for some formats, and the fallback elsewhere."""

    dtype: ComputeDtype
    formats: tuple[str, ...]  # WeightFormat names that run on this path where the GPU has it
    families: tuple[str, ...]  # GpuSpec.family values (architectures) with the path
    peak_figure: PeakFigure  # the GpuSpec field holding the path's dense peak
    fallback: ComputeDtype = "fp16"
    fallback_kernel: str  # what the engines run on GPUs without the path
    source: str


TENSOR_PATHS: tuple[TensorPath, ...] = (
    TensorPath(
        dtype="fp8", formats=("fp8", "fp8-block"),
        families=("ada", "hopper", "blackwell", "blackwell-ultra", "cdna3", "cdna4", "gaudi3"),
        peak_figure="fp8_tensor_tflops",
        fallback_kernel="Marlin FP8 weight-only (W8A16): FP8 weights dequantised to BF16 in the kernel",
        source=_VLLM_Q + "fp8.py Fp8LinearMethod: use_marlin = not has_device_capability(89) ('For GPUs that lack "
        "FP8 hardware support, we can leverage the Marlin kernel for fast weight-only FP8 quantization'); "
        + _VLLM_Q + "utils/marlin_utils_fp8.py is_fp8_marlin_supported (capability >= 80), block-wise weight_block_size "
        "scales turned into Marlin group scales; NVIDIA PTX ISA: FP8 mma needs sm_89+ (Ada, Hopper, Blackwell); "
        "AMD CDNA 3 whitepaper: FP8 matrix cores on MI300X/MI325X; Intel Gaudi 3 (Hot Chips 2024, hardware_db/"
        "intel-gaudi.yaml): the MME runs FP8 at the BF16 rate, which vLLM's Gaudi plugin uses through Intel Neural "
        "Compressor FP8",
    ),
    TensorPath(
        dtype="fp4", formats=("mxfp4",),
        families=("blackwell", "blackwell-ultra", "cdna4"),
        peak_figure="fp4_tensor_tflops",
        fallback_kernel="MXFP4 weight-only (Marlin / triton w4a16): FP4 weights dequantised to BF16 in the kernel",
        source=_FP4_SOURCE,
    ),
    # NVFP4's per-16 E4M3 scales are NVIDIA's block layout; CDNA 4's MFMA takes E8M0 (MX) scales only.
    TensorPath(
        dtype="fp4", formats=("nvfp4",),
        families=("blackwell", "blackwell-ultra"),
        peak_figure="fp4_tensor_tflops",
        fallback_kernel="NVFP4 weight-only Marlin (W4A16): FP4 weights dequantised to BF16 in the kernel",
        source=_FP4_SOURCE,
    ),
)


class MatmulPath(Frozen):
    """The dtype one format's matmuls actually run at on one GPU, and why."""

    dtype: ComputeDtype
    weight_only: bool  # weights stored narrower than the matmul dtype: unpacked in the kernel
    reason: str


def tensor_path(fmt: WeightFormat) -> TensorPath | None:
    """The native tensor path a format needs, None for formats every GPU runs at their own dtype."""
    return next((p for p in TENSOR_PATHS if fmt.name in p.formats), None)


def _weight_only(fmt: WeightFormat, dtype: str) -> bool:
    """True when the stored weights are narrower than the matmul operands (GGUF: its own kernels decide)."""
    return fmt.kind != "gguf" and fmt.bits_per_weight < DTYPE_BITS[dtype]


def own_path(fmt: WeightFormat) -> MatmulPath:
    """The path ``fmt`` names itself (``compute_dtype``), for a GPU whose architecture is not known."""
    dtype = fmt.compute_dtype
    how = "weight-only, dequantised to 16-bit in the kernel" if _weight_only(fmt, dtype) else "native"
    if fmt.kind == "gguf":
        how = "the engine's GGUF block kernels"
    return MatmulPath(dtype=dtype, weight_only=_weight_only(fmt, dtype), reason=f"{fmt.name}: {dtype} matmuls ({how})")


def matmul_dtype(fmt: WeightFormat, gpu: GpuSpec) -> MatmulPath:
    """The tensor-core dtype ``fmt``'s matmuls run at on ``gpu`` (fp16, fp8, int8, fp4), with the reason.

    A format needing FP8/FP4 tensor cores runs there when the GPU's architecture has them,
    else at the path's fallback (FP16/BF16) with weight-only kernels.
    """
    path = tensor_path(fmt)
    if path is None:
        return own_path(fmt)
    if gpu.family in path.families:
        peak = getattr(gpu, path.peak_figure)
        note = "" if peak else f"; {gpu.id} has no catalogued {path.peak_figure}: priced at its FP16 peak"
        return MatmulPath(dtype=path.dtype, weight_only=_weight_only(fmt, path.dtype),
                          reason=f"{fmt.name}: {path.dtype} tensor cores on {gpu.family}{note}")
    return MatmulPath(dtype=path.fallback, weight_only=_weight_only(fmt, path.fallback),
                      reason=f"{fmt.name}: no {path.dtype} tensor cores on {gpu.family} ({gpu.id}): {path.fallback_kernel}, "
                      f"{path.fallback} tensor rate")
