"""The accelerators of issue 11: each entry loads, cites a source per figure, matches the figures read
from its sources, resolves by its NVML name, and plans end to end."""

from __future__ import annotations

import json

import pytest

from planner.catalog.loading import hardware_catalog
from planner.catalog.lookup import find_gpu
from planner.catalog.schemas import GPU_FIGURES
from planner.cli import main
from planner.errors import UnknownNameError

NEW_IDS = ["gb200", "gb300", "b300", "h20", "l20", "h800-sxm", "a800-sxm-80gb", "mi355x", "mi350x", "mi300a",
           "gaudi-3", "rtx-pro-6000-blackwell-server"]
NEW = [find_gpu(i) for i in NEW_IDS]

# Device names as nvidia-smi / torch / MLPerf system files print them (sources in each entry).
NVML_NAMES = {
    "NVIDIA GB200": "gb200",
    "NVIDIA GB300 NVL": "gb300",
    "NVIDIA B300 SXM6 AC": "b300",
    "NVIDIA H20": "h20",
    "NVIDIA L20": "l20",
    "NVIDIA H800": "h800-sxm",
    "NVIDIA A800-SXM4-80GB": "a800-sxm-80gb",
    "AMD Instinct MI355X 288GB HBM3e": "mi355x",
    "AMD Instinct MI350X 288GB HBM3e": "mi350x",
    "AMD Instinct MI300A": "mi300a",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": "rtx-pro-6000-blackwell-server",
}

# Figures checked by hand against the source each entry cites (value as the source prints it, then
# the conversion to the catalogue's dense per-GPU convention).
DATASHEET = [
    # DGX SuperPOD GB200 datasheet: 720 PFLOPS FP8 sparse per 72 GPUs -> 720 / 72 / 2 = 5 PF dense.
    ("gb200", "fp8_tensor_tflops", 720e3 / 72 / 2),
    # same sheet: 1440 PFLOPS FP4 sparse per 72 GPUs -> 10 PF dense.
    ("gb200", "fp4_tensor_tflops", 1440e3 / 72 / 2),
    # NVML memory.total 199715979264 bytes.
    ("gb200", "usable_memory_gib", 199715979264 / 2**30),
    # NVIDIA 'Inside Blackwell Ultra' blog: 15 PetaFLOPS dense NVFP4, 288 GB HBM3E, 8 TB/s.
    ("gb300", "fp4_tensor_tflops", 15000),
    ("gb300", "memory_gib", 288),
    ("gb300", "memory_bandwidth_gb_s", 8000),
    # NVML memory.total 298500227072 bytes.
    ("gb300", "usable_memory_gib", 298500227072 / 2**30),
    # NVIDIA HGX B300 table: FP8 72 PFLOPS sparse / 8 GPUs / 2; FP32 600 TFLOPS / 8.
    ("b300", "fp8_tensor_tflops", 72e3 / 8 / 2),
    ("b300", "fp16_tensor_tflops", 36e3 / 8 / 2),
    ("b300", "fp32_tflops", 600 / 8),
    # Reseller listing (Tom's Hardware): HGX H20 96 GB HBM3, 4.0 TB/s, BF16 148, FP8 296 TFLOPS.
    ("h20", "memory_bandwidth_gb_s", 4000),
    ("h20", "fp16_tensor_tflops", 148),
    ("h20", "fp8_tensor_tflops", 296),
    # Same listing: L20 864 GB/s, FP16 119.5, FP8 239; nvidia-smi 46068 MiB.
    ("l20", "memory_bandwidth_gb_s", 864),
    ("l20", "fp8_tensor_tflops", 239),
    ("l20", "usable_memory_gib", 46068 / 1024),
    # NVIDIA H800 datasheet: 3.35 TB/s, 1979 TFLOPS FP16 and 3958 FP8 with sparsity.
    ("h800-sxm", "memory_bandwidth_gb_s", 3350),
    ("h800-sxm", "fp16_tensor_tflops", 1979 / 2),
    ("h800-sxm", "fp8_tensor_tflops", 3958 / 2),
    # A100 80GB SXM datasheet: 2.039 TB/s, 312 TFLOPS FP16; the A800 keeps them.
    ("a800-sxm-80gb", "memory_bandwidth_gb_s", 2039),
    ("a800-sxm-80gb", "fp16_tensor_tflops", 312),
    # AMD MI355X: 2400 MHz x 512 FMA/clk x 2 FLOP x 1024 matrix cores; 157.3 FP32; MXFP4 10.1 PF.
    ("mi355x", "fp16_tensor_tflops", 2400e6 * 512 * 2 * 1024 / 1e12),
    ("mi355x", "fp32_tflops", 157.3),
    ("mi355x", "fp4_tensor_tflops", 10100),
    # MI350X: the same silicon at 2200 MHz.
    ("mi350x", "fp16_tensor_tflops", 2200e6 * 512 * 2 * 1024 / 1e12),
    # MI300A: MI300X's 1307.4 TFLOPS FP16 over 304 CUs, on 228 CUs (ROCm gpu-arch-specs).
    ("mi300a", "fp16_tensor_tflops", 1307.4 * 228 / 304),
    ("mi300a", "memory_gib", 128),
    # Intel Hot Chips 2024: BF16 and FP8 matrix 1835 TFLOPS, 128 GB HBM2e at 3.67 TB/s, 900 W OAM.
    ("gaudi-3", "fp16_tensor_tflops", 1835),
    ("gaudi-3", "fp8_tensor_tflops", 1835),
    ("gaudi-3", "memory_bandwidth_gb_s", 3670),
    ("gaudi-3", "tdp_w", 900),
    # NVIDIA Server Edition page (issue 11): 1597 GB/s; nvidia-smi 97887 MiB.
    ("rtx-pro-6000-blackwell-server", "memory_bandwidth_gb_s", 1597),
    ("rtx-pro-6000-blackwell-server", "usable_memory_gib", 97887 / 1024),
]


def _run(runner, *args):
    return runner.invoke(main, list(args))


def test_every_new_entry_is_loaded_from_the_catalogue():
    ids = [g.id for g in hardware_catalog()]
    assert set(NEW_IDS) <= set(ids)
    assert len(ids) == len(set(ids))


def test_ids_and_aliases_are_unique_across_the_catalogue():
    seen: dict[str, str] = {}
    for gpu in hardware_catalog():
        for name in dict.fromkeys(n.lower() for n in gpu.names):
            assert seen.setdefault(name, gpu.id) == gpu.id, (name, seen[name], gpu.id)


@pytest.mark.parametrize("gpu", NEW, ids=lambda g: g.id)
def test_every_set_figure_names_the_source_items_that_give_it(gpu):
    items = [gpu.source] if isinstance(gpu.source, str) else gpu.source
    assert gpu.unsourced_figures == []
    assert set(gpu.figure_sources) <= set(GPU_FIGURES)
    for figure, positions in gpu.figure_sources.items():
        assert getattr(gpu, figure) is not None, f"{figure} is sourced but not set"
        assert all(1 <= p <= len(items) for p in positions)
    assert set(gpu.weak_figures) <= set(gpu.figure_sources)


@pytest.mark.parametrize("gpu_id, figure, expected", DATASHEET, ids=lambda v: str(v))
def test_figures_match_their_datasheets(gpu_id, figure, expected):
    assert getattr(find_gpu(gpu_id), figure) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("nvml, gpu_id", NVML_NAMES.items())
def test_nvml_names_resolve(nvml, gpu_id):
    assert find_gpu(nvml).id == gpu_id


def test_parts_without_a_vendor_datasheet_say_so():
    # H20 and L20 rest on a reseller listing and press only: every datasheet figure is marked weak
    # (the usable memory is what nvidia-smi reports, a reading rather than a datasheet figure).
    for gpu_id in ("h20", "l20"):
        gpu = find_gpu(gpu_id)
        assert set(gpu.weak_figures) == set(gpu.figure_sources) - {"usable_memory_gib"}


def test_memory_classes_and_links_of_the_odd_ones_out():
    assert find_gpu("gaudi-3").memory_class == "hbm"
    assert find_gpu("gaudi-3").interconnect.kind == "ethernet"
    assert find_gpu("gaudi-3").vendor == "intel"
    # The APU shares its HBM with the CPU but keeps HBM bandwidth and efficiencies.
    assert find_gpu("mi300a").memory_class == "hbm"
    assert find_gpu("l20").memory_class == "gddr"
    assert find_gpu("rtx-pro-6000-blackwell-server").memory_class == "gddr"


def test_bare_rtx_pro_6000_resolves_to_neither_card():
    with pytest.raises(UnknownNameError) as err:
        find_gpu("RTX PRO 6000")
    assert "rtx-pro-6000-blackwell-server" in str(err.value)
    assert "rtx-pro-6000-blackwell," in str(err.value) + ","
    # The two editions stay reachable by their own names, with their own bandwidths.
    assert find_gpu("NVIDIA RTX PRO 6000 Blackwell Workstation Edition").memory_bandwidth_gb_s == 1792
    assert find_gpu("RTX PRO 6000 Server").memory_bandwidth_gb_s == 1597


def test_cli_names_both_editions_for_the_bare_name(runner):
    result = _run(runner, "estimate", "--target", "llama-3.1-8b", "--gpu", "RTX PRO 6000")
    assert result.exit_code == 2
    assert "rtx-pro-6000-blackwell-server" in result.output and "rtx-pro-6000-blackwell," in result.output
    assert "Traceback" not in result.output


def _estimate(runner, gpu: str, *extra: str) -> dict:
    result = _run(runner, "estimate", "--target", "llama-3.3-70b", "--draft", "llama-3.2-1b", "--gpu", gpu,
                  "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("gpu", ["h20", "gaudi-3", "mi355x"])
def test_estimate_runs_end_to_end_on_a_70b_model(runner, gpu):
    data = _estimate(runner, gpu, "--gpus", "2")
    assert data["gpu"] == gpu and data["engine"] == "vllm"
    assert data["t_target_ms"] > 0 and data["speedup"] > 1


def test_decode_time_follows_memory_bandwidth(runner):
    # Batch-1 decode of the same model with the same engine on HBM parts is weight streaming, so the
    # target pass orders by bandwidth: MI355X 8000 > H20 4000 > H800 3350 GB/s (same TP degree).
    t = {g: _estimate(runner, g, "--gpus", "2")["t_target_ms"] for g in ("mi355x", "h20", "h800-sxm")}
    assert t["mi355x"] < t["h20"] < t["h800-sxm"]
    # Fixed per-pass costs keep the ratio under the bandwidth ratio 4000 / 3350 = 1.19.
    assert 1.0 < t["h800-sxm"] / t["h20"] <= 4000 / 3350 * 1.02
