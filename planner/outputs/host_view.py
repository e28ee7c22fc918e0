"""Present ``specplan detect``: the host CPU, then the NVIDIA GPUs or why there are none."""

from __future__ import annotations

from typing import Any

from planner.outputs.calibration_view import print_detect_table
from planner.outputs.render import Column, print_line, print_table

__all__ = ["print_host_table", "print_detect_report"]


def print_host_table(cpu: dict[str, Any]) -> None:
    """One row: the CPU as ``--gpu cpu`` plans it (bandwidth with how it was obtained)."""
    columns = (Column("cpu", wrap=True), Column("cores", "right"), Column("memory", "right"),
               Column("bandwidth", "right"), Column("how", wrap=True), Column("FP32 peak", "right"), Column("plan as"))
    fp32 = f"{cpu['fp32_tflops']:.2f} TFLOPS" + (" (est.)" if cpu.get("fp32_is_estimate") else "")
    cells = [[str(cpu["model"]), str(cpu["physical_cores"]), f"{cpu['memory_gib']:.1f} GiB",
              f"{cpu['bandwidth_gb_s']:.1f} GB/s", str(cpu["bandwidth_method"]), fp32, f"--gpu {cpu['plan_as']}"]]
    print_table("host CPU", columns, cells)


def print_detect_report(report: dict[str, Any]) -> None:
    """The CPU table, then the GPU table, or a line saying why no NVIDIA GPU was found."""
    print_host_table(report["cpu"])
    if report["gpus"]:
        print_detect_table(report["gpus"])
    else:
        print_line(str(report["no_gpu"]))
