"""Cost model of one forward pass, operator by operator (DESIGN.md section 3).

profiles.py: what a model reads and computes and what a GPU group and engine give it;
gemm.py: weight matmuls (tile padding, GGUF kernel regimes); comm.py: all-reduces;
operators.py: the pass as the sum of its operators. Every importer uses the names below.
"""

from __future__ import annotations

from planner.costmodel.operators import (
    OPERATORS,
    PassCost,
    baseline_step_s,
    decode_cost,
    expected_experts_touched,
    pass_cost,
    roofline_decode_s,
    verify_cost,
)
from planner.costmodel.profiles import (
    DTYPES,
    ROLES,
    DeviceProfile,
    ModelProfile,
    device_profile,
    model_profile,
    peak_tflops,
    stack_profiles,
)

__all__ = [
    "ModelProfile",
    "DeviceProfile",
    "PassCost",
    "DTYPES",
    "ROLES",
    "OPERATORS",
    "stack_profiles",
    "model_profile",
    "device_profile",
    "peak_tflops",
    "expected_experts_touched",
    "pass_cost",
    "decode_cost",
    "baseline_step_s",
    "verify_cost",
    "roofline_decode_s",
]
