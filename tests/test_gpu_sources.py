"""Per-figure sources of the accelerator catalogue (issue 11): the six corrected figures with the vendor
material that gives them, and every figure of the pre-issue-11 hardware files mapped to its sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from planner.catalog.lookup import find_gpu
from planner.catalog.schemas import GPU_FIGURES, GpuSpec

HARDWARE_DB = Path(__file__).parent.parent / "hardware_db"
# The files that existed before issue 11 (new accelerators live in files of their own).
EXISTING_FILES = [
    "amd-instinct.yaml", "amd-radeon.yaml", "apple-silicon.yaml", "nvidia-ada-datacenter.yaml",
    "nvidia-ampere-datacenter.yaml", "nvidia-blackwell.yaml", "nvidia-geforce-30.yaml", "nvidia-geforce-40.yaml",
    "nvidia-geforce-50.yaml", "nvidia-hopper.yaml", "nvidia-turing-volta.yaml", "nvidia-workstation.yaml",
]
# A source item counts as vendor material when it names the vendor's document, site or driver.
VENDOR_ITEM = re.compile(r"nvidia|amd|apple|rocm|nvml|whitepaper|datasheet|mlcommons", re.IGNORECASE)


def _entries(name: str) -> list[GpuSpec]:
    return [GpuSpec(**g) for g in yaml.safe_load((HARDWARE_DB / name).read_text())["gpus"]]


EXISTING = [(name, gpu) for name in EXISTING_FILES for gpu in _entries(name)]


def _items(gpu: GpuSpec, figure: str) -> list[str]:
    sources = [gpu.source] if isinstance(gpu.source, str) else gpu.source
    return [sources[p - 1] for p in gpu.figure_sources[figure]]


def test_the_existing_files_hold_75_entries():
    assert len(EXISTING) == 75
    assert len(_entries("apple-silicon.yaml")) == 17


@pytest.mark.parametrize("name, gpu", EXISTING, ids=[g.id for _, g in EXISTING])
def test_every_figure_names_its_sources(name, gpu):
    assert gpu.unsourced_figures == []
    assert set(gpu.figure_sources) == {f for f in GPU_FIGURES if getattr(gpu, f) is not None}


@pytest.mark.parametrize("name, gpu", EXISTING, ids=[g.id for _, g in EXISTING])
def test_weak_figures_are_said_so_and_strong_ones_have_vendor_material(name, gpu):
    if gpu.weak_figures:
        assert "WEAK" in (gpu.notes or "")
    for figure in set(gpu.figure_sources) - set(gpu.weak_figures):
        assert any(VENDOR_ITEM.search(item) for item in _items(gpu, figure)), figure


def test_rtx_5090_tensor_rates_use_the_fp32_accumulate_convention():
    gpu = find_gpu("rtx-5090")
    assert (gpu.fp16_tensor_tflops, gpu.fp8_tensor_tflops) == (209.5, 419)
    # Whitepaper: 170 SMs x 512 FP16 FLOP/clock/SM with FP32 accumulate x 2.407 GHz boost.
    assert 170 * 512 * 2.407e9 / 1e12 == pytest.approx(gpu.fp16_tensor_tflops, abs=0.05)
    # Same convention as the Ada row it is compared with (RTX 4090: 165.2 / 330.3).
    assert find_gpu("rtx-4090").fp16_tensor_tflops == 165.2
    for figure in ("fp16_tensor_tflops", "fp8_tensor_tflops"):
        items = _items(gpu, figure)
        assert any("nvidia-rtx-blackwell-gpu-architecture.pdf" in i and "Table 3" in i and "209.5/419" in i for i in items)
        assert figure not in gpu.weak_figures


def test_b200_is_the_180_gb_part_at_7_7_tb_s():
    gpu = find_gpu("b200")
    assert (gpu.memory_gib, gpu.memory_bandwidth_gb_s) == (180, 7700)
    assert any("7.7TB/s" in i or "7.7 TB/s" in i for i in _items(gpu, "memory_bandwidth_gb_s"))
    assert any("1,440 GB" in i and "docs.nvidia.com" in i for i in _items(gpu, "memory_gib"))
    assert 1440 / 8 == gpu.memory_gib
    assert not gpu.weak_figures


@pytest.mark.parametrize("gpu_id", ["mi300x", "mi325x"])
def test_mi300_series_carry_amds_matrix_peaks(gpu_id):
    gpu = find_gpu(gpu_id)
    assert (gpu.fp16_tensor_tflops, gpu.fp8_tensor_tflops, gpu.int8_tensor_tops) == (1307.4, 2614.9, 2614.9)
    # ROCm MI300 table: 2048 (FP16) and 4096 (FP8) FLOPS/clock/CU, 304 CUs, 2.1 GHz peak engine clock.
    assert 304 * 2048 * 2.1e9 / 1e12 == pytest.approx(gpu.fp16_tensor_tflops, abs=0.05)
    assert 304 * 4096 * 2.1e9 / 1e12 == pytest.approx(gpu.fp8_tensor_tflops, abs=0.05)
    for figure in ("fp16_tensor_tflops", "fp8_tensor_tflops", "int8_tensor_tops"):
        assert any("rocm.docs.amd.com" in i for i in _items(gpu, figure))
        assert figure not in gpu.weak_figures
