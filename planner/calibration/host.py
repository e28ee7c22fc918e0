"""The host CPU as a device: read it from the platform and build the spec ``--gpu cpu`` plans on.

Everything this module knows about the machine comes through one boundary,
:class:`HostSources` (the text of /proc/cpuinfo and /proc/meminfo, the cpufreq maximum,
``platform`` names, ``os`` counts) plus one measurer for the memory bandwidth, so tests pass
fake /proc text and a fake measurer and never depend on this machine or its speed.

Linux exposes no DRAM speed or channel count to an unprivileged process (that is in the
SMBIOS tables, root only), so the bandwidth is measured: a multi-threaded numpy copy of a
buffer of at most :data:`COPY_BUFFER_CAP_BYTES`, repeated until :data:`COPY_TIME_CAP_S`,
median pass kept (STREAM's "copy" convention: read + write bytes over time). The FP32 peak is
cores x clock x SIMD lanes x 2 (FMA) x 2 FMA pipes, an estimate the spec's notes say is one.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from planner.calibration.schema import DeviceIdentity
from planner.catalog.schemas import GpuSpec, Interconnect
from planner.units import GB, GIB, KIB, MICRO, MILLI

__all__ = [
    "HOST_DEVICE_NAMES",
    "HostSources",
    "BandwidthReading",
    "HostCpu",
    "is_host_device",
    "simd_fp32_lanes",
    "fp32_peak_tflops",
    "copy_bandwidth_gb_s",
    "measure_copy_bandwidth",
    "read_host",
    "host_spec",
    "host_device",
    "host_identity",
    "host_to_dict",
    "detect_report",
]

HOST_DEVICE_NAMES = ("cpu", "host")  # what --gpu accepts for this machine's CPU
HOST_DEVICE_ID = "cpu"
HOST_MEMORY_TYPE = "host DRAM"  # memory_class_of -> "cpu"

COPY_BUFFER_CAP_BYTES = 256 * 1024 * 1024  # source + destination of the measured copy, bytes
COPY_MEMORY_SHARE = 1 / 16  # never more than this share of the machine's memory for the copy
COPY_TIME_CAP_S = 1.0  # stop repeating passes after this long (one pass always runs)
COPY_MAX_PASSES = 8
_FMA_PIPES = 2  # FMA units per core: Intel since Haswell, AMD since Zen 2, Arm Neoverse/Apple cores (>= 2)
_FLOPS_PER_FMA = 2
# The int8 path (GGUF dot products) over the FP32 FMA rate. AVX2/AVX-512 (vpmaddubsw, VNNI) and Arm
# SDOT multiply 4 int8 pairs per 32-bit lane, but llama.cpp's K-quant dots also unpack nibbles and
# scales, so 2 x FP32 is what is priced (engines.yaml cost.cpu sets eta_compute against it from a
# public pp512 row); without such instructions, the FP32 rate.
_INT8_OVER_FP32_DOT = 2.0
_INT8_OVER_FP32_PLAIN = 1.0
_PLACEHOLDER_CLOCK_GHZ = 2.5  # no cpufreq and no "cpu MHz": a modest all-core clock, flagged in the notes
_PLACEHOLDER_TDP_W = 65.0  # no unprivileged interface reports a CPU's TDP; only priced in power columns


@dataclass(frozen=True)
class BandwidthReading:
    """A memory bandwidth figure and how it was obtained."""

    gb_s: float  # decimal GB/s
    method: str  # "measured copy (...)" or "platform (...)"


@dataclass(frozen=True)
class HostSources:
    """The host as text and numbers; the defaults read this machine, tests pass fakes."""

    cpuinfo: Callable[[], str | None] = field(default=lambda: _read_text("/proc/cpuinfo"))
    meminfo: Callable[[], str | None] = field(default=lambda: _read_text("/proc/meminfo"))
    max_freq_khz: Callable[[], str | None] = field(
        default=lambda: _read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
    machine: Callable[[], str] = field(default=platform.machine)
    processor: Callable[[], str] = field(default=platform.processor)
    logical_cpus: Callable[[], int | None] = field(default=os.cpu_count)
    sysconf_memory_bytes: Callable[[], int | None] = field(default=lambda: _sysconf_memory())


@dataclass(frozen=True)
class HostCpu:
    """This machine's CPU and memory as read, with the spec the planner uses for it."""

    model: str
    architecture: str  # platform.machine(): x86_64, aarch64, arm64
    physical_cores: int
    logical_cpus: int
    max_clock_ghz: float | None
    simd: str | None  # "avx512", "avx2", "neon" or None
    memory_total_bytes: int
    memory_available_bytes: int | None
    bandwidth: BandwidthReading
    fp32_tflops: float
    fp32_is_estimate: bool
    notes: tuple[str, ...]
    spec: GpuSpec

    @property
    def memory_gib(self) -> float:
        """Total memory, GiB."""
        return self.memory_total_bytes / GIB


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _sysconf_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def is_host_device(name: str) -> bool:
    """True when ``--gpu NAME`` means this machine's CPU."""
    return name.strip().lower() in HOST_DEVICE_NAMES


def _blocks(cpuinfo: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one key -> value dict per logical CPU (blank-line separated)."""
    out = []
    for block in re.split(r"\n\s*\n", cpuinfo.strip()):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip().lower()] = value.strip()
        if entry:
            out.append(entry)
    return out


def _model_name(blocks: list[dict[str, str]], sources: HostSources) -> str:
    for key in ("model name", "cpu model", "hardware", "processor"):
        for b in blocks:
            value = b.get(key, "")
            if value and not value.isdigit():  # arm's "processor : 0" is an index
                return re.sub(r"\s+", " ", value)
    return sources.processor().strip() or sources.machine().strip() or "unknown CPU"


def _physical_cores(blocks: list[dict[str, str]], logical: int) -> int:
    """Distinct (package, core) pairs; Arm lists no SMT siblings, so each entry is a core."""
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    if pairs:
        return len(pairs)
    cores = {b.get("physical id"): b.get("cpu cores") for b in blocks if "cpu cores" in b}
    if cores and all(v and v.isdigit() for v in cores.values()):
        return sum(int(v) for v in cores.values() if v)
    processors = sum(1 for b in blocks if "processor" in b)
    return processors or logical


def simd_fp32_lanes(flags: set[str]) -> tuple[str | None, int | None]:
    """The widest FP32 FMA vector a CPU's flags advertise: (name, FP32 lanes per instruction).

    x86 "flags": avx512f -> 16, avx2 with fma -> 8; Arm "Features": asimd (NEON) -> 4.
    """
    if "avx512f" in flags:
        return "avx512", 16
    if "avx2" in flags and "fma" in flags:
        return "avx2", 8
    if "asimd" in flags or "neon" in flags:
        return "neon", 4
    return None, None


def fp32_peak_tflops(cores: int, clock_ghz: float, lanes: int) -> float:
    """Dense FP32 peak, TFLOPS: cores x clock (GHz) x lanes x 2 flops per FMA x 2 FMA pipes."""
    return cores * clock_ghz * lanes * _FLOPS_PER_FMA * _FMA_PIPES * MILLI  # GFLOPS -> TFLOPS


def copy_bandwidth_gb_s(copied_bytes: int, seconds: float) -> float:
    """STREAM-copy bandwidth, decimal GB/s: each byte copied is read once and written once."""
    return 2 * copied_bytes / seconds / GB


def measure_copy_bandwidth(threads: int, buffer_bytes: int = COPY_BUFFER_CAP_BYTES,
                           time_cap_s: float = COPY_TIME_CAP_S, clock: Callable[[], float] = time.perf_counter
                           ) -> BandwidthReading:
    """Median-of-passes multi-threaded copy of ``buffer_bytes`` (source + destination), bounded in time.

    One slice per thread (numpy releases the GIL inside a large copy, so the threads overlap).
    The first pass only faults the destination's pages in and is not counted; timed passes
    repeat until ``time_cap_s`` or :data:`COPY_MAX_PASSES`, and their median counts (the best
    pass alone swings with a neighbour's load on a shared machine).
    """
    import numpy as np

    n = max(buffer_bytes // 2 // 8, threads)  # float64 elements per array
    src, dst = np.ones(n), np.empty(n)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(src[a:b], dst[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    times: list[float] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = clock()
        for attempt in range(COPY_MAX_PASSES + 1):
            t0 = clock()
            list(pool.map(lambda p: np.copyto(p[1], p[0]), parts))
            if attempt:
                times.append(max(clock() - t0, 1e-9))
            if clock() - start >= time_cap_s and times:
                break
    copied = n * 8
    return BandwidthReading(copy_bandwidth_gb_s(copied, float(np.median(times))),
                            f"measured copy ({copied * 2 / GB:.2f} GB read+written, {threads} threads, "
                            f"median of {len(times)} passes)")


def _meminfo_bytes(text: str | None, key: str) -> int | None:
    m = re.search(rf"^{key}:\s*(\d+)\s*kB", text or "", re.MULTILINE)
    return int(m.group(1)) * KIB if m else None


def _clock_ghz(blocks: list[dict[str, str]], max_freq_khz: str | None) -> float | None:
    if max_freq_khz and max_freq_khz.strip().isdigit() and int(max_freq_khz) > 0:
        return int(max_freq_khz) * MICRO  # kHz -> GHz
    mhz = [float(b["cpu mhz"]) for b in blocks if re.fullmatch(r"\d+(\.\d+)?", b.get("cpu mhz", ""))]
    return max(mhz) * MILLI if mhz else None


def read_host(sources: HostSources | None = None,
              measurer: Callable[[int, int], BandwidthReading] | None = None) -> HostCpu:
    """This machine's CPU (or the fake one ``sources`` describes) and its planning spec.

    ``measurer(threads, buffer_bytes)`` gives the bandwidth; default: :func:`measure_copy_bandwidth`.
    """
    src = sources or HostSources()
    blocks = _blocks(src.cpuinfo() or "")
    logical = src.logical_cpus() or sum(1 for b in blocks if "processor" in b) or 1
    cores = _physical_cores(blocks, logical)
    flags = set((blocks[0].get("flags") or blocks[0].get("features") or "").split()) if blocks else set()
    simd, lanes = simd_fp32_lanes(flags)
    meminfo = src.meminfo()
    total = _meminfo_bytes(meminfo, "MemTotal") or src.sysconf_memory_bytes() or 0
    if total <= 0:
        from planner.errors import SpecplanError

        raise SpecplanError("cannot read this machine's memory size (/proc/meminfo, sysconf)")
    available = _meminfo_bytes(meminfo, "MemAvailable")
    clock = _clock_ghz(blocks, src.max_freq_khz())
    notes = []
    if clock is None:
        notes.append(f"no CPU clock reported; {_PLACEHOLDER_CLOCK_GHZ:g} GHz assumed")
    if lanes is None:
        notes.append("no AVX2/AVX-512/NEON flag read; 4 FP32 lanes (SSE) assumed")
    fp32 = fp32_peak_tflops(cores, clock or _PLACEHOLDER_CLOCK_GHZ, lanes or 4)
    notes.append(f"FP32 peak {fp32:.2f} TFLOPS is an estimate: {cores} cores x {clock or _PLACEHOLDER_CLOCK_GHZ:.2f} GHz "
                 f"x {lanes or 4} lanes ({simd or 'sse'}) x 2 (FMA) x {_FMA_PIPES} pipes")
    buffer = int(min(COPY_BUFFER_CAP_BYTES, total * COPY_MEMORY_SHARE))
    bandwidth = (measurer or measure_copy_bandwidth)(cores, buffer)
    notes.append(f"bandwidth {bandwidth.gb_s:.1f} GB/s: {bandwidth.method}")
    model = _model_name(blocks, src)
    dot = _INT8_OVER_FP32_DOT if simd in ("avx512", "avx2") or "asimddp" in flags else _INT8_OVER_FP32_PLAIN
    spec = host_spec(model, src.machine(), cores, total, available, bandwidth, fp32, dot, tuple(notes))
    return HostCpu(model=model, architecture=src.machine(), physical_cores=cores, logical_cpus=logical,
                   max_clock_ghz=clock, simd=simd, memory_total_bytes=total, memory_available_bytes=available,
                   bandwidth=bandwidth, fp32_tflops=fp32, fp32_is_estimate=True, notes=tuple(notes), spec=spec)


def host_spec(model: str, architecture: str, cores: int, total_bytes: int, available_bytes: int | None,
              bandwidth: BandwidthReading, fp32_tflops: float, int8_over_fp32: float,
              notes: tuple[str, ...]) -> GpuSpec:
    """The GpuSpec of a host CPU: memory in bytes, bandwidth in GB/s, FP32 peak in TFLOPS.

    CPUs have no tensor units: 16-bit matmuls run on the FP32 FMA lanes (F16C / BF16 converts),
    so the FP16 path is the FP32 peak; the int8 path (GGUF dot products) is ``int8_over_fp32`` x it.
    The plannable memory is what the OS reports available now (the rest holds the OS and other work).
    """
    usable = available_bytes if available_bytes and available_bytes <= total_bytes else total_bytes
    return GpuSpec(
        id=HOST_DEVICE_ID, name=f"{model} ({cores} cores)", vendor="cpu", family=architecture.lower() or "cpu",
        segment="consumer", memory_gib=total_bytes / GIB, usable_memory_gib=usable / GIB,
        memory_type=HOST_MEMORY_TYPE, memory_bandwidth_gb_s=bandwidth.gb_s, fp32_tflops=fp32_tflops,
        fp16_tensor_tflops=fp32_tflops, int8_tensor_tops=fp32_tflops * int8_over_fp32, tdp_w=_PLACEHOLDER_TDP_W,
        interconnect=Interconnect(kind="none", bandwidth_gb_s=0),
        source="this machine's CPU (/proc/cpuinfo, /proc/meminfo, measured copy)",
        notes="; ".join([*notes, f"tdp_w is a {_PLACEHOLDER_TDP_W:g} W placeholder",
                         "usable memory = MemAvailable at planning time"]),
    )


@lru_cache(maxsize=1)
def host_device() -> HostCpu:
    """This machine's CPU, read and measured once per process."""
    return read_host()


def host_identity(host: HostCpu) -> DeviceIdentity:
    """The calibration-file identity of the host CPU (backend cpu)."""
    return DeviceIdentity(name=host.spec.name, catalog_id=HOST_DEVICE_ID, memory_gib=round(host.memory_gib, 2), backend="cpu")


def host_to_dict(host: HostCpu) -> dict[str, object]:
    """JSON-ready: memory in GiB, clock in GHz, bandwidth in GB/s, FP32 in TFLOPS."""
    return {
        "model": host.model, "architecture": host.architecture, "physical_cores": host.physical_cores,
        "logical_cpus": host.logical_cpus, "max_clock_ghz": round(host.max_clock_ghz, 3) if host.max_clock_ghz else None,
        "simd": host.simd, "memory_gib": round(host.memory_gib, 2),
        "memory_available_gib": round(host.memory_available_bytes / GIB, 2) if host.memory_available_bytes else None,
        "bandwidth_gb_s": round(host.bandwidth.gb_s, 1), "bandwidth_method": host.bandwidth.method,
        "fp32_tflops": round(host.fp32_tflops, 3), "fp32_is_estimate": host.fp32_is_estimate,
        "plan_as": HOST_DEVICE_ID,
    }


def detect_report(host: HostCpu, gpu_reader: Callable[[], list] | None = None) -> dict[str, object]:
    """``specplan detect``: the CPU, then NVIDIA GPUs (NVML) or the reason there are none.

    ``gpu_reader`` returns planner.calibration.nvml LocalGpu rows (default: nvml.detect); its
    NoGpuError becomes ``no_gpu``, so a machine without a GPU still reports its CPU.
    """
    from planner.calibration.nvml import NoGpuError, detect, detect_to_dict

    try:
        gpus, no_gpu = detect_to_dict((gpu_reader or detect)()), None
    except NoGpuError as exc:
        text = str(exc)
        gpus, no_gpu = [], text if text.startswith("no NVIDIA GPU") else f"no NVIDIA GPU: {text}"
    return {"cpu": host_to_dict(host), "gpus": gpus, "no_gpu": no_gpu}
