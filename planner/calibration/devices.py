"""The device a probe records for --gpu NAME: this host's CPU, the local NVIDIA GPUs, or a catalogue id."""

from __future__ import annotations

from planner.calibration.host import host_device, host_identity, is_host_device
from planner.calibration.schema import DeviceIdentity
from planner.catalog.schemas import GpuSpec

__all__ = ["named_device"]


def named_device(gpu: str, count: int = 1) -> tuple[DeviceIdentity, GpuSpec]:
    """(the identity a calibration file records, the GpuSpec whose figures a fit divides by) for ``--gpu``.

    ``cpu``: the host, its bandwidth measured now; ``local``: NVML's group; anything else a
    catalogue id or name, recorded by the name the driver reports (the entry's first NVML name).
    """
    if is_host_device(gpu):
        host = host_device()
        return host_identity(host), host.spec
    if gpu.strip().lower() == "local":
        from planner.calibration.nvml import local_group

        spec, _, ident = local_group()
        return ident, spec
    from planner.catalog.lookup import find_gpu

    spec = find_gpu(gpu)
    return DeviceIdentity(name=spec.names[0] if spec.names else spec.id, catalog_id=spec.id, count=count,
                          memory_gib=spec.memory_gib), spec
