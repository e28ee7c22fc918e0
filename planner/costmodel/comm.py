"""GPU-to-GPU traffic of one pass: ring all-reduces (tensor parallel) or layer hand-offs."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from planner.costmodel.profiles import DeviceProfile, ModelProfile

__all__ = ["comm_s"]

_ACT_BYTES = 2  # activations exchanged between GPUs in bf16/fp16
_ALLREDUCES_PER_LAYER = 2  # after attention and after the MLP (Megatron-style tensor parallel)


def comm_s(p: ModelProfile, d: DeviceProfile, tokens: NDArray[np.float64]) -> NDArray[np.float64]:
    """GPU-to-GPU time of one pass over ``tokens`` rows, s.

    Tensor parallel: 2 ring all-reduces per layer, each 2(g-1)/g of the activations over
    the link plus a fixed latency and one hop latency per ring step. Layer split: the
    activations cross g-1 boundaries once.
    """
    if not np.any(d.gpus > 1):
        return np.zeros(())  # one GPU: no traffic (broadcasts against the other operators)
    size = tokens * p.hidden * _ACT_BYTES
    steps = 2 * (d.gpus - 1)  # ring all-reduce: reduce-scatter then all-gather
    per_allreduce = steps / d.gpus * size / d.link_bytes_s + d.link_latency_s + steps * d.hop_latency_s
    tensor = _ALLREDUCES_PER_LAYER * p.layers * per_allreduce
    layer_split = (d.gpus - 1) * (size / d.link_bytes_s + d.link_latency_s + d.hop_latency_s)
    return np.where(d.gpus > 1, np.where(d.tensor_parallel, tensor, layer_split), 0.0)
