"""Unit constants: the only place in specplan where powers of ten or two appear.

Vendors quote bandwidth in decimal GB/s (1e9 bytes) and memory capacity in binary
units (an "80 GB" H100 holds 80 GiB of DRAM), so both are kept apart here.
"""

from __future__ import annotations

__all__ = ["GB", "GIB", "KIB", "MIB", "TERA", "BILLION", "MICRO", "NANO", "MILLI", "bytes_to_gib", "gib_to_bytes", "BITS_PER_BYTE"]

KIB = 2**10
MIB = 2**20
GIB = 2**30
GB = 10**9
TERA = 10**12
BILLION = 10**9  # parameter counts are quoted in billions
MILLI = 1e-3
MICRO = 1e-6
NANO = 1e-9
BITS_PER_BYTE = 8


def bytes_to_gib(n_bytes: float) -> float:
    """Convert a byte count to GiB (2**30 bytes)."""
    return n_bytes / GIB


def gib_to_bytes(gib: float) -> float:
    """Convert GiB (2**30 bytes) to bytes."""
    return gib * GIB
