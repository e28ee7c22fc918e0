"""Local GPU detection through NVML, against a fake NVML module (no GPU needed)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from planner.calibration.nvml import (
    LocalGpu,
    NoGpuError,
    detect,
    detect_to_dict,
    local_group,
    match_catalog,
    spec_from_nvml,
    theoretical_bandwidth_gb_s,
)
from planner.calibration.schema import DeviceIdentity
from planner.catalog.loading import hardware_catalog
from planner.catalog.schemas import GpuSpec
from planner.errors import SpecplanError
from planner.units import MIB


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


@dataclass
class FakeDevice:
    name: str | bytes
    memory_mib: int
    mem_clock_mhz: int = 2619
    bus_width_bits: int = 5120
    power_mw: int = 700_000
    failing: tuple[str, ...] = ()  # NVML functions that raise for this device


@dataclass
class FakeNVML:
    """The subset of pynvml that planner.calibration.nvml calls; records init/shutdown."""

    devices: list[FakeDevice] = field(default_factory=list)
    init_error: str | None = None
    driver: str | bytes = "550.54.15"
    calls: list[str] = field(default_factory=list)

    NVMLError = FakeNVMLError
    NVML_CLOCK_MEM = 2

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error:
            raise FakeNVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        return self.devices[index]

    def _check(self, dev: FakeDevice, function: str) -> None:
        if function in dev.failing:
            raise FakeNVMLError("Not Supported")

    def nvmlDeviceGetName(self, dev: FakeDevice) -> str | bytes:
        self._check(dev, "name")
        return dev.name

    def nvmlDeviceGetMemoryInfo(self, dev: FakeDevice) -> SimpleNamespace:
        return SimpleNamespace(total=dev.memory_mib * MIB, free=0, used=0)

    def nvmlDeviceGetMaxClockInfo(self, dev: FakeDevice, clock_type: int) -> int:
        assert clock_type == self.NVML_CLOCK_MEM
        self._check(dev, "clock")
        return dev.mem_clock_mhz

    def nvmlDeviceGetMemoryBusWidth(self, dev: FakeDevice) -> int:
        self._check(dev, "bus")
        return dev.bus_width_bits

    def nvmlDeviceGetPowerManagementLimit(self, dev: FakeDevice) -> int:
        self._check(dev, "power")
        return dev.power_mw

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        return self.driver

    def nvmlDeviceGetCudaComputeCapability(self, dev: FakeDevice) -> tuple[int, int]:
        return (9, 0)


def h100() -> FakeDevice:
    return FakeDevice("NVIDIA H100 80GB HBM3", 81559, 2619, 5120, 700_000)


def rtx4090() -> FakeDevice:
    return FakeDevice("NVIDIA GeForce RTX 4090", 24564, 10501, 384, 450_000)


# --- bandwidth from clock and bus width -------------------------------------------


# Published peak bandwidths (vendor datasheets) and the max memory clock NVML reports.
@pytest.mark.parametrize(
    ("clock_mhz", "bus_bits", "memory_type", "published_gb_s"),
    [
        (1593, 5120, "HBM2e", 2039),  # A100-SXM4-80GB
        (2619, 5120, "HBM3", 3350),  # H100 SXM5
        (10501, 384, "GDDR6X", 1008),  # GeForce RTX 4090
    ],
)
def test_bandwidth_matches_published_figures(clock_mhz, bus_bits, memory_type, published_gb_s):
    got = theoretical_bandwidth_gb_s(clock_mhz, bus_bits, memory_type)
    assert got == pytest.approx(published_gb_s, rel=0.002)


def test_bandwidth_without_memory_type_uses_double_data_rate():
    assert theoretical_bandwidth_gb_s(2619, 5120) == pytest.approx(3352.32)


# --- detection --------------------------------------------------------------------


def test_two_h100s_match_the_catalogue():
    fake = FakeNVML(devices=[h100(), h100()])
    gpus = detect(fake)
    assert [g.index for g in gpus] == [0, 1]
    g = gpus[0]
    assert isinstance(g, LocalGpu)
    assert g.catalog_id == "h100-sxm" and g.from_catalog
    assert g.spec is hardware_catalog().index["h100-sxm"]
    assert g.theoretical_bandwidth_gb_s == pytest.approx(3352, abs=1)
    assert g.memory_gib == pytest.approx(79.65, abs=0.01)
    assert g.power_limit_w == pytest.approx(700)
    assert g.driver == "550.54.15" and g.compute_capability == "9.0"


def test_local_group_counts_identical_gpus():
    spec, count, identity = local_group(FakeNVML(devices=[h100(), h100()]))
    assert spec.id == "h100-sxm" and count == 2
    assert isinstance(identity, DeviceIdentity)
    assert identity == DeviceIdentity(name="NVIDIA H100 80GB HBM3", catalog_id="h100-sxm", count=2,
                                      memory_gib=79.65, driver="550.54.15", backend="cuda")


def test_local_group_counts_only_gpus_like_gpu_0():
    _, count, _ = local_group(FakeNVML(devices=[rtx4090(), h100(), rtx4090()]))
    assert count == 2


def test_rtx_4090_matches_the_catalogue():
    (g,) = detect(FakeNVML(devices=[rtx4090()]))
    assert g.catalog_id == "rtx-4090"
    assert g.theoretical_bandwidth_gb_s == pytest.approx(g.spec.memory_bandwidth_gb_s, rel=0.001)


def test_unknown_gpu_gets_a_spec_built_from_nvml():
    dev = FakeDevice("NVIDIA Future GPU X", 190_000, 4000, 8192, 1_000_000)
    (g,) = detect(FakeNVML(devices=[dev]))
    assert not g.from_catalog and g.catalog_id is None
    spec = g.spec
    assert spec.id == "local-nvidia-future-gpu-x"
    assert GpuSpec.model_validate(spec.model_dump()) == spec
    assert spec.segment == "datacenter" and spec.memory_class == "hbm"
    assert spec.memory_bandwidth_gb_s == pytest.approx(8192, rel=1e-9)  # 4000e6 * 2 * 1024 B
    assert spec.tdp_w == pytest.approx(1000)
    assert spec.interconnect.kind == "pcie" and spec.interconnect.bandwidth_gb_s == 64
    assert spec.fp16_tensor_tflops is None
    assert spec.source == "NVML on this machine (550.54.15)"
    assert "not in the catalogue" in spec.notes and "assumed" in spec.notes


def test_spec_from_nvml_consumer_card():
    spec = spec_from_nvml("NVIDIA Mystery 12", 12 * 1024 * MIB, 10000, 192, 250.0, "560.1")
    assert spec.segment == "consumer" and spec.memory_type == "GDDR6"
    assert spec.memory_gib == pytest.approx(12) and spec.usable_memory_gib == pytest.approx(12)
    assert spec.memory_bandwidth_gb_s == pytest.approx(480)


def test_name_returned_as_bytes():
    dev = h100()
    dev.name = b"NVIDIA H100 80GB HBM3"
    fake = FakeNVML(devices=[dev], driver=b"535.104.05")
    (g,) = detect(fake)
    assert g.name == "NVIDIA H100 80GB HBM3" and g.catalog_id == "h100-sxm"
    assert g.driver == "535.104.05"


def test_optional_queries_failing_still_detects():
    dev = FakeDevice("NVIDIA Future GPU X", 16_000, failing=("power", "bus"))
    fake = FakeNVML(devices=[dev, h100()])
    fake.devices[1].failing = ("power", "clock")
    gpus = detect(fake)
    assert gpus[0].power_limit_w is None and gpus[0].bus_width_bits is None
    assert gpus[0].theoretical_bandwidth_gb_s is None
    assert gpus[0].spec.memory_bandwidth_gb_s > 0 and gpus[0].spec.tdp_w > 0
    assert "placeholder" in gpus[0].spec.notes
    assert gpus[1].catalog_id == "h100-sxm" and gpus[1].mem_clock_mhz is None


def test_enforced_power_limit_is_the_fallback():
    fake = FakeNVML(devices=[FakeDevice("NVIDIA Future GPU X", 16_000, failing=("power",))])
    fake.nvmlDeviceGetEnforcedPowerLimit = lambda dev: 350_000  # type: ignore[attr-defined]
    (g,) = detect(fake)
    assert g.power_limit_w == pytest.approx(350)


def test_detect_to_dict_is_json_ready():
    rows = detect_to_dict(detect(FakeNVML(devices=[h100(), FakeDevice("NVIDIA Future GPU X", 16_000)])))
    json.dumps(rows)
    assert set(rows[0]) == {
        "name", "memory_gib", "mem_clock_mhz", "bus_width_bits", "theoretical_bandwidth_gb_s", "power_limit_w",
        "driver", "compute_capability", "catalog_id", "from_catalog", "catalog_bandwidth_gb_s",
    }
    assert rows[0]["catalog_id"] == "h100-sxm" and rows[0]["catalog_bandwidth_gb_s"] == 3350.0
    assert rows[1]["from_catalog"] is False and rows[1]["catalog_bandwidth_gb_s"] is None


# --- failures: one line, exit code 3, NVML always shut down -------------------------


def _assert_one_line(err: NoGpuError) -> None:
    assert isinstance(err, SpecplanError) and err.exit_code == 3
    assert "\n" not in str(err)


def test_init_failure_is_no_gpu_error():
    fake = FakeNVML(init_error="Driver Not Loaded")
    with pytest.raises(NoGpuError) as info:
        detect(fake)
    _assert_one_line(info.value)
    assert str(info.value) == "no NVIDIA GPU found: NVML could not initialise (Driver Not Loaded)"
    assert "shutdown" not in fake.calls  # nothing to shut down after a failed init


def test_zero_devices_is_no_gpu_error():
    fake = FakeNVML(devices=[])
    with pytest.raises(NoGpuError, match="NVML reports 0 devices") as info:
        detect(fake)
    _assert_one_line(info.value)
    assert fake.calls == ["init", "shutdown"]


def test_missing_pynvml_is_no_gpu_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(NoGpuError, match="nvidia-ml-py") as info:
        detect()
    _assert_one_line(info.value)


def test_required_query_failing_is_no_gpu_error_and_shuts_down():
    fake = FakeNVML(devices=[FakeDevice("x", 1000, failing=("name",))])
    with pytest.raises(NoGpuError, match="could not read GPU 0") as info:
        detect(fake)
    _assert_one_line(info.value)
    assert fake.calls == ["init", "shutdown"]


@pytest.mark.parametrize("devices", [[], [h100], [rtx4090, h100]])
def test_shutdown_always_follows_init(devices):
    fake = FakeNVML(devices=[make() for make in devices])
    try:
        detect(fake)
    except NoGpuError:
        pass
    assert fake.calls == ["init", "shutdown"]


def test_real_pynvml_without_a_gpu_raises_no_gpu_error():
    # On this GPU-less machine NVML cannot load its library; on a machine with a GPU
    # detection succeeds. Either way no other exception may escape.
    try:
        gpus = detect()
    except NoGpuError as err:
        _assert_one_line(err)
        return
    assert gpus and all(isinstance(g, LocalGpu) for g in gpus)


# --- catalogue matching -------------------------------------------------------------


def test_catalogue_holds_the_shared_name_cases():
    # NVML calls both RTX 3080s "NVIDIA GeForce RTX 3080"; only the 10 GB entry carries it.
    index = hardware_catalog().index
    assert index["nvidia geforce rtx 3080"].id == "rtx-3080"
    assert index["rtx 3080 12gb"].id == "rtx-3080-12gb"
    assert "nvidia geforce rtx 4060 ti" not in index


@pytest.mark.parametrize(
    ("nvml_name", "memory_mib", "expected"),
    [
        ("NVIDIA GeForce RTX 3080", 10240, "rtx-3080"),
        ("NVIDIA GeForce RTX 3080", 12288, "rtx-3080-12gb"),  # not the 3080 Ti, also 12 GB
        ("NVIDIA GeForce RTX 4060 Ti", 16380, "rtx-4060-ti-16gb"),
        ("NVIDIA GeForce RTX 4060 Ti", 8188, None),  # 8 GB model not in the catalogue
        ("NVIDIA A100-SXM4-40GB", 40960, "a100-sxm-40gb"),
        ("NVIDIA A100-SXM4-80GB", 81920, "a100-sxm-80gb"),
        ("nvidia h100 80gb hbm3", 81559, "h100-sxm"),  # case-insensitive
        ("NVIDIA H100 80GB HBM3", 40000, None),  # memory far from any H100
        ("NVIDIA Future GPU X", 81559, None),
    ],
)
def test_match_catalog(nvml_name, memory_mib, expected):
    entry = match_catalog(nvml_name, memory_mib * MIB)
    assert (entry.id if entry else None) == expected


def test_rtx_3080_12gb_detected_by_memory():
    dev = FakeDevice("NVIDIA GeForce RTX 3080", 12288, 9501, 384, 350_000)
    (g,) = detect(FakeNVML(devices=[dev]))
    assert g.catalog_id == "rtx-3080-12gb"
