"""Weight matmuls of one pass: tile padding of small M and the quantised-kernel regimes.

A weight GEMM over M rows (tokens) of a matrix of P parameters (B bytes) costs

    tensor-core GEMM:   max(B / (bw * eta), 2 * P * pad(M) / (peak * eta_compute))
    GGUF block quants:  tiles * B / (bw * eta) + (rows_done - tiles) * 2 * P / dot_rate

pad(M) rounds M up to the engine's M tile (engines.yaml gemm_tile_rows). The quantised
kernels (llama.cpp MMVQ / MMQ) load the weights once per tile of rows and do each
row's dot products after the load, so every row past the first in a tile adds its
dot time; the mat-vec kernel serves up to ``quant_matvec_rows`` rows in one tile.
A row's dot time is 2 P / dot rate, the rate set per kernel line from its unit (CUDA
dp4a; on Metal the FP32 ALUs at the dequantise + dot ops each weight costs per row).
Metal runs K-quants below ``kquant_matvec_rows`` rows through the plain mat-vec,
one weight pass per row. Everything broadcasts over arrays of rows and of profile fields.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from planner.costmodel.profiles import DeviceProfile

__all__ = ["padded_rows", "gemm_s", "quant_matmul_s", "weight_matmul_s"]

Array = NDArray[np.float64]


def padded_rows(rows: Array, matvec_rows: Array | float, small: Array | float, large: Array | float,
                mid: Array | float | None = None) -> Array:
    """Rows a tiled GEMM computes for ``rows`` real ones, rows.

    Up to ``matvec_rows`` the engine runs a mat-vec (no padding); up to the small tile
    it pads to the small tile, up to the mid tile to the mid tile; above, to a multiple
    of the large tile (vLLM's CUTLASS dispatch: M <= 16, <= 64, <= 128, larger).
    """
    mid = small if mid is None else mid
    tiled = np.where(rows <= small, small, np.where(rows <= mid, mid, np.ceil(rows / large) * large))
    return np.where(rows <= matvec_rows, rows, tiled)


Priced = tuple[Array, Array, Array]  # (time, memory part, compute part); compute-bound where compute > memory


def gemm_s(mem_s: Array, flops_per_row: Array | float, padded_s_per_flop: Array) -> Priced:
    """A tensor-core GEMM, s: the slower of its bytes and its padded flops (padded rows / rate, s per flop)."""
    compute = flops_per_row * padded_s_per_flop
    return np.maximum(mem_s, compute), mem_s, compute


def quant_matmul_s(mem_s: Array, flops_per_row: Array | float, rows: Array, d: DeviceProfile,
                   kquant: Array | bool = False) -> Priced:
    """A GGUF block-quantised matmul over ``rows`` rows, s: weight loads plus the dot passes after them.

    Mat-vec (rows <= quant_matvec_rows): one load, rows - 1 extra dot passes. Above it
    the quantised GEMM reads the weights once per tile of quant_matmul_tile_rows rows
    and pads rows to quant_matmul_tile_step, and costs no less than the mat-vec at its limit.
    """
    mv = rows <= d.quant_matvec_rows
    tiles = np.where(mv, 1.0, np.ceil(rows / d.quant_matmul_tile_rows))
    done = np.where(mv, rows, np.ceil(rows / d.quant_matmul_tile_step) * d.quant_matmul_tile_step)
    rate = np.where(mv, d.quant_matvec_dot_flops, d.quant_matmul_dot_flops)
    load = tiles * mem_s
    dots = (done - tiles) * flops_per_row / rate
    # llama.cpp keeps the mat-vec up to the row count where the GEMM stops losing to it, so
    # above the limit a pass costs at least the mat-vec at the limit (the GEMM does not get
    # cheaper with more rows).
    at_limit = mem_s + (d.quant_matvec_rows - 1) * flops_per_row / d.quant_matvec_dot_flops
    dots = np.where(mv, dots, np.maximum(load + dots, at_limit) - load)
    # Plain mat-vec (Metal K-quants at 2-3 rows): each row is a whole mat-vec of its own,
    # the weights streamed again and the row's ALU work hidden under them unless it is longer.
    reread = kquant & (rows < d.kquant_matvec_rows)
    load = np.where(reread, rows * mem_s, load)
    dots = np.where(reread, rows * np.maximum(flops_per_row / d.quant_matvec_dot_flops - mem_s, 0.0), dots)
    return load + dots, load, dots


def weight_matmul_s(mem_s: Array, flops_per_row: Array | float, rows: Array, padded_s_per_flop: Array,
                    block_quant: Array | bool, d: DeviceProfile, kquant: Array | bool = False) -> Priced:
    """One weight operator: the GGUF kernels where they apply, else a tiled GEMM."""
    priced = gemm_s(mem_s, flops_per_row, padded_s_per_flop)
    use = block_quant & (d.quant_matvec_rows > 0)
    if not np.any(use):
        return priced  # the common case: no GGUF kernels anywhere in this call
    quant = quant_matmul_s(mem_s, flops_per_row, rows, d, kquant)
    return tuple(np.where(use, q, g) for q, g in zip(quant, priced))  # type: ignore[return-value]
