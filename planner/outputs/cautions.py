"""Notes a plan's reader needs before acting on it: a tight memory margin, a checkpoint to find."""

from __future__ import annotations

from planner.catalog.precisions import weight_format
from planner.errors import SpecplanError

__all__ = ["TIGHT_HEADROOM_GIB", "headroom_caution", "draft_checkpoint_hint", "batch_caution"]

# Below this free memory per GPU (GiB) a plan that "fits" often fails at start-up: CUDA graph
# capture (vLLM/SGLang capture one graph per batch size, ~0.5-1.5 GiB on large models), allocator
# fragmentation in PyTorch's caching allocator, NCCL buffers under tensor parallelism and
# driver/library version differences in the CUDA context all come on top of what the cost model
# counts; each is ~0.5-1 GiB, so 2 GiB covers the usual sum.
TIGHT_HEADROOM_GIB = 2.0


def headroom_caution(headroom_gib: float, fits: bool) -> str | None:
    """A caution when a fitting plan leaves under TIGHT_HEADROOM_GIB free per GPU, else None."""
    if not fits or headroom_gib >= TIGHT_HEADROOM_GIB:
        return None
    return (f"only {headroom_gib:.2f} GiB free per GPU (under {TIGHT_HEADROOM_GIB:g} GiB): CUDA graphs, allocator "
            "fragmentation and NCCL buffers may not fit; lower the engine's memory fraction or context, or add a GPU")


def draft_checkpoint_hint(model: str | None, precision: str | None) -> str | None:
    """Which checkpoint a quantized model needs (AWQ/GPTQ/int8, MXFP4/NVFP4/block FP8 and GGUF types are not made from bf16 at load)."""
    if not model or not precision:
        return None
    try:
        fmt = weight_format(precision)
    except SpecplanError:
        return None
    if fmt.kind == "gguf":
        return f"needs a GGUF {fmt.name} file of {model} (convert and quantize it, or download one)"
    if fmt.name == "fp8":
        return f"fp8: a pre-quantized fp8 checkpoint of {model}, or the server's online fp8 quantization of bf16 weights"
    if fmt.bits_per_weight < 16:  # AWQ/GPTQ/int8 exports, MXFP4/NVFP4/block-FP8 checkpoints: never made at load
        return f"needs a pre-quantized {fmt.name} checkpoint of {model} (pass its folder with export --draft-path)"
    return None


def batch_caution(batch: int, speculating: bool) -> str | None:
    """A caution on a speculative plan for more than one sequence at a time, else None.

    Why: the published runs at batch > 1 in specplan's validation set (EAGLE-3 paper Tables 3 and 5,
    SPEED-Bench, SGLang and TensorRT-LLM posts) gain less than the cost model predicts, by tens of
    percent at batch 16-64 (``specplan validate``, "Under load"); at batch 1 it holds its limits.
    """
    if batch <= 1 or not speculating:
        return None
    return (f"batch {batch}: published runs under load gain less from speculation than this model predicts (see "
            "`specplan validate`, 'Under load'); measure the pair on your server at this load (`specplan calibrate`) "
            "before sizing on this figure")
