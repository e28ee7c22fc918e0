"""Detect the local NVIDIA GPUs through NVML and map them onto catalogue entries.

NVML comes from NVIDIA's official binding, the ``nvidia-ml-py`` distribution, whose
import name is ``pynvml``. It is imported lazily, inside :func:`detect`, so importing
specplan never needs it. Every public function takes an ``nvml`` argument: ``None``
means "import pynvml"; tests pass a fake module that implements the same calls.

A GPU whose NVML name is in the catalogue (names and aliases include NVML's) uses
the catalogue entry, which carries vendor peak figures. Any other GPU gets a spec
built from what NVML reports (memory, clock, bus width, power limit), enough for
the memory-bound cost model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from planner.calibration.schema import DeviceIdentity
from planner.catalog.loading import hardware_catalog
from planner.catalog.schemas import GpuSpec, Interconnect, memory_class_of
from planner.errors import SpecplanError
from planner.units import BITS_PER_BYTE, GB, GIB, MICRO, MILLI

__all__ = [
    "NoGpuError",
    "LocalGpu",
    "theoretical_bandwidth_gb_s",
    "match_catalog",
    "spec_from_nvml",
    "detect",
    "local_group",
    "detect_to_dict",
]

# NVML reports each memory technology's clock so that two transfers per reported
# clock give the per-pin data rate: HBM is double data rate on its real clock, and
# for GDDR6/6X/7 NVML reports half the per-pin rate (RTX 4090: 10501 MHz for
# 21 Gbit/s). Checked against the published figures in theoretical_bandwidth_gb_s.
_TRANSFERS_PER_NVML_CLOCK = {"hbm": 2, "gddr": 2}
_DEFAULT_TRANSFERS_PER_CLOCK = 2

# Buses this wide only exist on HBM stacks (4096+ bits); GDDR parts top out at 512.
_HBM_MIN_BUS_WIDTH_BITS = 2048
# Cards with this much memory are sold into data centres; below it, consumer boards.
_DATACENTER_MIN_MEMORY_GIB = 40.0
# Relative memory difference still counted as "the same card" (ECC and firmware
# carve-outs make NVML report a few percent less than the capacity as sold).
_MEMORY_MATCH_TOLERANCE = 0.10
# A PCIe 4.0 x16 slot: about 32 GB/s each way, quoted bidirectionally like NVLink.
_ASSUMED_PCIE_GB_S = 64.0
# Placeholders for a GPU that NVML cannot describe; deliberately modest (an L4-class
# card) so an unknown part is never planned as faster than it is. Calibration fixes it.
_FALLBACK_BANDWIDTH_GB_S = 300.0
_FALLBACK_TDP_W = 300.0

_NAME_PREFIXES = ("nvidia ", "geforce ")
_MEMORY_QUALIFIER = re.compile(r"^\d+(\.\d+)?\s?gb$")


class NoGpuError(SpecplanError):
    """No usable NVIDIA GPU: NVML missing, no driver, or no devices. The CLI exits 3."""

    exit_code = 3


@dataclass(frozen=True)
class LocalGpu:
    """One GPU as NVML reports it, with the spec the planner will use for it."""

    index: int
    name: str
    memory_total_bytes: int
    mem_clock_mhz: int | None
    bus_width_bits: int | None
    theoretical_bandwidth_gb_s: float | None  # from clock and bus width, decimal GB/s
    power_limit_w: float | None
    driver: str | None
    compute_capability: str | None  # "9.0"
    catalog_id: str | None
    spec: GpuSpec
    from_catalog: bool

    @property
    def memory_gib(self) -> float:
        """Total memory as NVML reports it, GiB."""
        return self.memory_total_bytes / GIB


def theoretical_bandwidth_gb_s(mem_clock_mhz: float, bus_width_bits: int, memory_type: str | None = None) -> float:
    """Peak DRAM bandwidth, decimal GB/s, from NVML's max memory clock (MHz) and bus width (bits).

    bandwidth = clock * 2 transfers per clock * bus_width / 8. Checked against
    published figures:

    - A100-SXM4-80GB (HBM2e): 1593 MHz, 5120 bits -> 2039 GB/s (spec 2039)
    - H100 SXM (HBM3): 2619 MHz, 5120 bits -> 3352 GB/s (spec 3350)
    - RTX 4090 (GDDR6X): 10501 MHz, 384 bits -> 1008 GB/s (spec 1008)
    """
    transfers = _DEFAULT_TRANSFERS_PER_CLOCK
    if memory_type is not None:
        transfers = _TRANSFERS_PER_NVML_CLOCK.get(memory_class_of(memory_type), _DEFAULT_TRANSFERS_PER_CLOCK)
    bytes_per_s = mem_clock_mhz / MICRO * transfers * bus_width_bits / BITS_PER_BYTE
    return bytes_per_s / GB


def _normalised(name: str) -> str:
    """A GPU name without vendor/brand prefixes or a memory-size qualifier, lower case.

    "NVIDIA GeForce RTX 3080 12GB" and "NVIDIA GeForce RTX 3080" both give "rtx 3080",
    while "RTX 3080 Ti" stays distinct (a different chip, not a memory variant).
    """
    text = name.lower().strip()
    for prefix in _NAME_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
    words = [w for w in re.split(r"[\s\-_]+", text) if w and not _MEMORY_QUALIFIER.match(w)]
    return " ".join(words)


def _memory_mismatch(entry: GpuSpec, memory_gib: float) -> float:
    """Relative difference between reported memory and the entry's (as sold or usable)."""
    figures = [entry.memory_gib] + ([entry.usable_memory_gib] if entry.usable_memory_gib else [])
    return min(abs(memory_gib - f) / f for f in figures)


def match_catalog(name: str, memory_total_bytes: int) -> GpuSpec | None:
    """The catalogue entry for an NVML name and total memory (bytes), or None.

    NVML names some cards identically across memory sizes (RTX 3080 10/12 GB, RTX
    4060 Ti 8/16 GB), so candidates are the exact name match plus every entry with
    the same name up to a memory qualifier; the one closest in memory, within 10%,
    wins. No candidate within 10% means the card is not in the catalogue.
    """
    catalog = hardware_catalog()
    key = _normalised(name)
    candidates = [g for g in catalog if any(_normalised(n) == key for n in g.names)]
    exact = catalog.index.get(name.strip().lower())
    if exact is not None and exact not in candidates:
        candidates.append(exact)
    memory_gib = memory_total_bytes / GIB
    scored = [(c, _memory_mismatch(c, memory_gib)) for c in candidates]
    within = [(c, d) for c, d in scored if d <= _MEMORY_MATCH_TOLERANCE]
    if not within:
        return None
    return min(within, key=lambda cd: cd[1])[0]


def _slug(name: str) -> str:
    """Lower-case id fragment: runs of other characters become single hyphens."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.") or "gpu"


def spec_from_nvml(
    name: str,
    memory_total_bytes: int,
    mem_clock_mhz: int | None,
    bus_width_bits: int | None,
    power_limit_w: float | None,
    driver: str | None,
) -> GpuSpec:
    """A GpuSpec built from NVML figures for a GPU missing from the catalogue.

    Memory in bytes, clock in MHz, bus width in bits, power limit in W. Tensor peaks
    are left out (the cost model estimates them from bandwidth).
    """
    memory_gib = memory_total_bytes / GIB
    hbm = bus_width_bits is not None and bus_width_bits >= _HBM_MIN_BUS_WIDTH_BITS
    memory_type = "HBM" if hbm else "GDDR6"
    notes = ["built from NVML figures; not in the catalogue",
             f"interconnect assumed PCIe ({_ASSUMED_PCIE_GB_S:g} GB/s), not measured"]
    if mem_clock_mhz and bus_width_bits:
        bandwidth = theoretical_bandwidth_gb_s(mem_clock_mhz, bus_width_bits, memory_type)
    else:
        bandwidth = _FALLBACK_BANDWIDTH_GB_S
        notes.append(f"NVML gave no memory clock or bus width; bandwidth is a {bandwidth:g} GB/s placeholder")
    if not power_limit_w:
        notes.append(f"NVML gave no power limit; tdp_w is a {_FALLBACK_TDP_W:g} W placeholder")
    return GpuSpec(
        id=f"local-{_slug(name)}",
        name=name,
        vendor="nvidia",
        family="unknown",
        segment="datacenter" if memory_gib >= _DATACENTER_MIN_MEMORY_GIB else "consumer",
        memory_gib=memory_gib,
        usable_memory_gib=memory_gib,
        memory_type=memory_type,
        memory_bandwidth_gb_s=bandwidth,
        tdp_w=power_limit_w or _FALLBACK_TDP_W,
        interconnect=Interconnect(kind="pcie", generation="assumed", bandwidth_gb_s=_ASSUMED_PCIE_GB_S),
        source=f"NVML on this machine ({driver or 'driver unknown'})",
        notes="; ".join(notes),
    )


def _import_nvml() -> ModuleType:
    """The ``pynvml`` module of nvidia-ml-py, or NoGpuError when it is not installed."""
    try:
        import pynvml
    except ImportError:
        raise NoGpuError("NVML is not installed (pip install nvidia-ml-py)") from None
    return pynvml


def _text(value: str | bytes) -> str:
    """NVML strings: older bindings return bytes, newer ones str."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (NVMLError's str is the driver's text)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _optional(nvml: Any, function: str, *args: Any) -> Any:
    """Result of an NVML query some GPUs or bindings lack; None when absent or failing."""
    call = getattr(nvml, function, None)
    if call is None:
        return None
    try:
        return call(*args)
    except nvml.NVMLError:
        return None


def _power_limit_w(nvml: Any, handle: Any) -> float | None:
    """Board power limit, W (NVML reports milliwatts); None when not exposed."""
    milliwatts = _optional(nvml, "nvmlDeviceGetPowerManagementLimit", handle)
    if milliwatts is None:
        milliwatts = _optional(nvml, "nvmlDeviceGetEnforcedPowerLimit", handle)
    return milliwatts * MILLI if milliwatts else None


def _compute_capability(nvml: Any, handle: Any) -> str | None:
    """CUDA compute capability as "major.minor", or None."""
    cc = _optional(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
    return f"{cc[0]}.{cc[1]}" if cc else None


def _read_gpu(nvml: Any, index: int, driver: str | None) -> LocalGpu:
    """Query one device; only the name and memory are required."""
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _text(nvml.nvmlDeviceGetName(handle))
        memory_total = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    except nvml.NVMLError as exc:
        raise NoGpuError(f"NVML could not read GPU {index} ({_one_line(exc)})") from None
    clock = _optional(nvml, "nvmlDeviceGetMaxClockInfo", handle, nvml.NVML_CLOCK_MEM)
    bus = _optional(nvml, "nvmlDeviceGetMemoryBusWidth", handle)
    power = _power_limit_w(nvml, handle)
    bandwidth = theoretical_bandwidth_gb_s(clock, bus) if clock and bus else None
    entry = match_catalog(name, memory_total)
    spec = entry or spec_from_nvml(name, memory_total, clock, bus, power, driver)
    return LocalGpu(
        index=index, name=name, memory_total_bytes=memory_total, mem_clock_mhz=clock, bus_width_bits=bus,
        theoretical_bandwidth_gb_s=bandwidth, power_limit_w=power, driver=driver,
        compute_capability=_compute_capability(nvml, handle), catalog_id=entry.id if entry else None,
        spec=spec, from_catalog=entry is not None,
    )


def _enumerate(nvml: Any) -> list[LocalGpu]:
    """Every device NVML lists, after nvmlInit succeeded."""
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except nvml.NVMLError as exc:
        raise NoGpuError(f"no NVIDIA GPU found: NVML could not count devices ({_one_line(exc)})") from None
    if count == 0:
        raise NoGpuError("no NVIDIA GPU found: NVML reports 0 devices")
    driver = _optional(nvml, "nvmlSystemGetDriverVersion")
    driver = _text(driver) if driver is not None else None
    return [_read_gpu(nvml, i, driver) for i in range(count)]


def detect(nvml: Any = None) -> list[LocalGpu]:
    """All local NVIDIA GPUs, in NVML index order; NoGpuError (exit 3) when there are none."""
    nvml = nvml if nvml is not None else _import_nvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise NoGpuError(f"no NVIDIA GPU found: NVML could not initialise ({_one_line(exc)})") from None
    try:
        return _enumerate(nvml)
    finally:
        # A failing shutdown must not hide the result or the real error.
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def local_group(nvml: Any = None) -> tuple[GpuSpec, int, DeviceIdentity]:
    """For ``--gpu local``: GPU 0's spec, how many GPUs share its name, and its identity."""
    gpus = detect(nvml)
    first = gpus[0]
    count = sum(1 for g in gpus if g.name == first.name)
    identity = DeviceIdentity(
        name=first.name, catalog_id=first.catalog_id, count=count,
        memory_gib=round(first.memory_gib, 2), driver=first.driver, backend="cuda",
    )
    return first.spec, count, identity


def detect_to_dict(gpus: list[LocalGpu]) -> list[dict[str, Any]]:
    """JSON-ready rows: memory in GiB, clock in MHz, bandwidth in GB/s, power in W."""
    return [
        {
            "name": g.name,
            "memory_gib": round(g.memory_gib, 2),
            "mem_clock_mhz": g.mem_clock_mhz,
            "bus_width_bits": g.bus_width_bits,
            "theoretical_bandwidth_gb_s": (
                round(g.theoretical_bandwidth_gb_s, 1) if g.theoretical_bandwidth_gb_s is not None else None
            ),
            "power_limit_w": g.power_limit_w,
            "driver": g.driver,
            "compute_capability": g.compute_capability,
            "catalog_id": g.catalog_id,
            "from_catalog": g.from_catalog,
            "catalog_bandwidth_gb_s": g.spec.memory_bandwidth_gb_s if g.from_catalog else None,
        }
        for g in gpus
    ]
