"""The host CPU as a device (--gpu cpu, detect): fake /proc text and an injected measurer, no wall clock."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import planner.calibration.host as host
from planner.calibration.host import (
    BandwidthReading,
    HostSources,
    copy_bandwidth_gb_s,
    detect_report,
    fp32_peak_tflops,
    measure_copy_bandwidth,
    read_host,
    simd_fp32_lanes,
)
from planner.catalog.schemas import memory_class_of
from planner.cli import main
from planner.engines import EngineSpec, check_engine_runs, engine_spec, engines
from planner.errors import SpecplanError
from planner.units import GIB

_X86_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2"


def _x86_cpuinfo(cores: int = 8, smt: int = 2, flags: str = _X86_FLAGS, mhz: str = "3200.000") -> str:
    """An 8-core / 16-thread desktop part as Linux prints it."""
    blocks = []
    for cpu in range(cores * smt):
        blocks.append("\n".join([
            f"processor\t: {cpu}", "vendor_id\t: AuthenticAMD", "model name\t: AMD Ryzen 7 7700X 8-Core Processor",
            f"cpu MHz\t\t: {mhz}", "physical id\t: 0", f"siblings\t: {cores * smt}", f"core id\t\t: {cpu % cores}",
            f"cpu cores\t: {cores}", f"flags\t\t: {flags}",
        ]))
    return "\n\n".join(blocks) + "\n"


_ARM_CPUINFO = "\n\n".join(
    f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\nCPU part\t: 0xd0c"
    for i in range(4)
) + "\n"
_MEMINFO = f"MemTotal:       {32 * 1024 * 1024} kB\nMemFree:        1000 kB\nMemAvailable:   {28 * 1024 * 1024} kB\n"


def _sources(cpuinfo: str = "", meminfo: str | None = _MEMINFO, max_khz: str | None = "4000000\n",
             machine: str = "x86_64") -> HostSources:
    return HostSources(cpuinfo=lambda: cpuinfo or _x86_cpuinfo(), meminfo=lambda: meminfo,
                       max_freq_khz=lambda: max_khz, machine=lambda: machine, processor=lambda: "",
                       logical_cpus=lambda: None, sysconf_memory_bytes=lambda: None)


def _measurer(gb_s: float):
    calls = []

    def measure(threads: int, buffer_bytes: int) -> BandwidthReading:
        calls.append((threads, buffer_bytes))
        return BandwidthReading(gb_s, f"fake copy ({threads} threads)")

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


def test_fake_8_core_desktop_is_read_from_proc_text():
    measure = _measurer(60.0)
    h = read_host(_sources(), measure)
    assert h.model == "AMD Ryzen 7 7700X 8-Core Processor"
    assert (h.physical_cores, h.logical_cpus) == (8, 16)  # SMT siblings share a core id
    assert h.simd == "avx2" and h.max_clock_ghz == pytest.approx(4.0)
    assert h.memory_gib == pytest.approx(32.0)
    # 8 cores x 4 GHz x 8 lanes x 2 x 2 pipes = 1024 GFLOPS, flagged as an estimate
    assert h.fp32_tflops == pytest.approx(1.024) and h.fp32_is_estimate
    assert measure.calls == [(8, host.COPY_BUFFER_CAP_BYTES)]  # one thread per core, buffer capped
    s = h.spec
    assert s.id == "cpu" and s.vendor == "cpu" and s.memory_class == "cpu"
    assert s.memory_bandwidth_gb_s == 60.0 and s.capacity_gib == pytest.approx(28.0)  # MemAvailable
    assert s.int8_tensor_tops == pytest.approx(2 * s.fp32_tflops)
    assert "estimate" in (s.notes or "") and "fake copy" in (s.notes or "")


def test_arm_cores_and_neon_from_features():
    h = read_host(_sources(_ARM_CPUINFO, max_khz=None, machine="aarch64"), _measurer(20.0))
    assert h.physical_cores == 4 and h.simd == "neon"
    assert h.model == "aarch64"  # no model name line: the platform's machine name
    assert h.max_clock_ghz is None and "assumed" in (h.spec.notes or "")  # placeholder clock said so


def test_unknown_simd_and_small_memory_cap_the_copy():
    tiny = "MemTotal:       1048576 kB\n"  # 1 GiB: the copy takes at most 1/16 of it
    measure = _measurer(5.0)
    h = read_host(_sources(_x86_cpuinfo(cores=2, smt=1, flags="fpu sse sse2"), meminfo=tiny), measure)
    assert h.simd is None and "SSE" in (h.spec.notes or "")
    assert measure.calls == [(2, GIB // 16)]
    assert h.spec.capacity_gib == pytest.approx(1.0)


def test_memory_from_sysconf_when_no_meminfo_and_refusal_without_either():
    src = HostSources(cpuinfo=lambda: _x86_cpuinfo(), meminfo=lambda: None, max_freq_khz=lambda: None,
                      machine=lambda: "x86_64", processor=lambda: "", logical_cpus=lambda: 16,
                      sysconf_memory_bytes=lambda: 16 * GIB)
    assert read_host(src, _measurer(30.0)).memory_gib == pytest.approx(16.0)
    bare = HostSources(cpuinfo=lambda: None, meminfo=lambda: None, max_freq_khz=lambda: None, machine=lambda: "x86_64",
                       processor=lambda: "", logical_cpus=lambda: 2, sysconf_memory_bytes=lambda: None)
    with pytest.raises(SpecplanError, match="memory size"):
        read_host(bare, _measurer(30.0))


def test_simd_lanes():
    assert simd_fp32_lanes({"avx512f", "avx2", "fma"}) == ("avx512", 16)
    assert simd_fp32_lanes({"avx2", "fma"}) == ("avx2", 8)
    assert simd_fp32_lanes({"avx2"}) == (None, None)  # AVX2 without FMA3 (none shipped): not priced as FMA
    assert simd_fp32_lanes({"asimd"}) == ("neon", 4)


@given(st.integers(1, 512), st.floats(0.5, 6.0), st.sampled_from([4, 8, 16]))
def test_fp32_peak_is_linear_in_cores_and_clock(cores, ghz, lanes):
    one = fp32_peak_tflops(1, 1.0, lanes)
    assert fp32_peak_tflops(cores, ghz, lanes) == pytest.approx(cores * ghz * one)
    assert one == pytest.approx(lanes * 4 / 1000)


def test_copy_bandwidth_counts_read_and_write():
    assert copy_bandwidth_gb_s(10**9, 1.0) == pytest.approx(2.0)


class _Clock:
    """A clock that advances a fixed step on every reading: the copy's own speed never matters."""

    def __init__(self, step: float) -> None:
        self.t, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.t += self.step
        self.reads += 1
        return self.t


def test_measured_copy_is_bounded_by_its_time_cap():
    clock = _Clock(0.5)  # each reading 0.5 s later: the cap of 1 s is passed after the first timed pass
    r = measure_copy_bandwidth(2, buffer_bytes=2 * 2**20, time_cap_s=1.0, clock=clock)
    assert "median of 1 passes" in r.method and clock.reads < 10
    assert r.gb_s == pytest.approx(copy_bandwidth_gb_s(2**20, 0.5))


def test_measured_copy_stops_at_its_pass_limit():
    clock = _Clock(1e-6)
    r = measure_copy_bandwidth(3, buffer_bytes=2**20, time_cap_s=10.0, clock=clock)
    assert f"median of {host.COPY_MAX_PASSES} passes" in r.method and math.isfinite(r.gb_s)


# --- planning on the CPU -------------------------------------------------------------


@pytest.fixture
def fake_host(monkeypatch):
    """--gpu cpu plans on a fake 8-core host with a given measured bandwidth."""

    def use(gb_s: float):
        h = read_host(_sources(), _measurer(gb_s))
        monkeypatch.setattr(host, "host_device", lambda: h)
        return h

    return use


def _estimate(runner, *extra: str) -> dict:
    result = runner.invoke(main, ["estimate", "--target", "meta-llama/Llama-3.2-1B", "--gpu", "cpu",
                                  "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_llamacpp_decode_on_the_cpu_follows_the_bandwidth(runner, fake_host):
    fake_host(50.0)
    slow = _estimate(runner, "--engine", "llamacpp")
    assert slow["gpu"] == "cpu" and slow["engine"] == "llamacpp"
    # Llama-3.2-1B Q4_K_M streams ~0.9 GB a token: at 0.85 x 50 GB/s that is ~45 tokens/s
    assert 30 < slow["target_tokens_per_s"] < 60
    assert any("this machine's CPU" in w and "fake copy" in w for w in slow["warnings"])
    fake_host(100.0)
    fast = _estimate(runner, "--engine", "llamacpp")
    # memory-bound: twice the bandwidth, nearly twice the rate (fixed per-pass costs keep it under 2x)
    assert 1.6 < fast["target_tokens_per_s"] / slow["target_tokens_per_s"] <= 2.0


def test_default_engine_on_the_cpu_is_llamacpp_and_hf_plans_too(runner, fake_host):
    fake_host(50.0)
    assert _estimate(runner)["engine"] == "llamacpp"
    hf = _estimate(runner, "--engine", "hf")
    assert hf["engine"] == "hf" and 0 < hf["target_tokens_per_s"] < _estimate(runner)["target_tokens_per_s"]


@pytest.mark.parametrize("engine,reason", [("vllm", "VLLM_TARGET_DEVICE=cpu"), ("sglang", "CUDA/ROCm"),
                                           ("trtllm", "CUDA engines"), ("gptfast", "CUDA graphs")])
def test_gpu_engines_refuse_the_cpu_in_one_line(runner, fake_host, engine, reason):
    fake_host(50.0)
    result = runner.invoke(main, ["estimate", "--target", "meta-llama/Llama-3.2-1B", "--gpu", "cpu", "--engine", engine])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert reason in result.stderr and "engines for it: llamacpp, hf" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_llamacpp_export_on_the_cpu_offloads_nothing(runner, fake_host, tmp_path):
    fake_host(50.0)
    out = tmp_path / "serve.sh"
    result = runner.invoke(main, ["export", "--server", "llamacpp", "--target", "meta-llama/Llama-3.1-8B-Instruct",
                                  "--draft", "meta-llama/Llama-3.2-1B-Instruct", "--gpu", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "-ngl 0 \\" in text and "--spec-draft-ngl 0 \\" in text and "-ngl 99" not in text


# --- data ---------------------------------------------------------------------------


def test_memory_class_cpu():
    assert memory_class_of("host DRAM") == "cpu"
    assert memory_class_of("DDR5") == "unified"  # a catalogued part's DDR stays what it was


def test_engines_that_run_on_the_cpu_carry_cpu_costs_and_the_rest_say_why():
    for e in engines().values():
        if "cpu" in e.vendors:
            assert e.cost_for("cpu").eta_mem > 0
        else:
            assert e.refuses.get("cpu"), e.name
            with pytest.raises(SpecplanError, match="no cost figures"):
                e.cost_for("cpu")


def test_an_engine_on_the_cpu_without_a_cpu_cost_block_is_refused():
    raw = engine_spec("llamacpp").model_dump()
    raw["cost"] = {k: v for k, v in raw["cost"].items() if k != "cpu"}
    with pytest.raises(ValueError, match="cost.cpu"):
        EngineSpec.model_validate(raw)


def test_check_engine_runs_names_the_reason():
    with pytest.raises(SpecplanError, match="TensorRT-LLM builds CUDA engines only"):
        check_engine_runs(engine_spec("trtllm"), "cpu", "a CPU")


# --- detect -------------------------------------------------------------------------


def test_detect_reports_the_cpu_and_no_gpu_line(runner, fake_host, monkeypatch):
    import planner.calibration.nvml as nvml

    fake_host(42.0)

    def no_gpu():
        raise nvml.NoGpuError("NVML is not installed (pip install nvidia-ml-py)")

    monkeypatch.setattr(nvml, "detect", no_gpu)
    result = runner.invoke(main, ["detect"])
    assert result.exit_code == 0, result.output
    assert "AMD Ryzen 7 7700X" in result.stdout and "42.0 GB/s" in result.stdout and "--gpu cpu" in result.stdout
    assert "no NVIDIA GPU: NVML is not installed" in result.stdout
    data = json.loads(runner.invoke(main, ["detect", "--format", "json"]).stdout)
    assert data["cpu"]["physical_cores"] == 8 and data["cpu"]["memory_gib"] == 32.0
    assert data["cpu"]["bandwidth_gb_s"] == 42.0 and data["cpu"]["bandwidth_method"].startswith("fake copy")
    assert data["gpus"] == [] and data["no_gpu"].startswith("no NVIDIA GPU")
    strict = runner.invoke(main, ["detect", "--require-gpu"])
    assert strict.exit_code == 3 and "no NVIDIA GPU" in strict.stderr


def test_detect_report_lists_gpus_next_to_the_cpu():
    from tests.test_nvml import FakeNVML, h100

    from planner.calibration.nvml import detect

    h = read_host(_sources(), _measurer(42.0))
    report = detect_report(h, lambda: detect(FakeNVML(devices=[h100()])))
    assert report["no_gpu"] is None and report["gpus"][0]["catalog_id"] == "h100-sxm"
    assert report["cpu"]["model"] == h.model


# --- the CPU probe's figures apply to --gpu cpu ----------------------------------------


def test_cpu_probe_is_fitted_against_the_host_and_applies_to_gpu_cpu(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.test_calibration import _cfg, _save, transformers

    from planner.calibration import probe as pr
    from planner.calibration.apply import apply_calibration
    from planner.catalog.lookup import find_model

    h = read_host(_sources(), _measurer(50.0))
    monkeypatch.setattr(host, "host_device", lambda: h)
    llama = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    target = _save(transformers.LlamaForCausalLM, llama, tmp_path / "t", 0)
    draft = _save(transformers.LlamaForCausalLM, llama, tmp_path / "d", 1)
    cal = pr.run_probe(_cfg(target, draft, device="cpu"), tmp_path / "cal.yaml")
    assert cal.device.backend == "cpu" and cal.device.catalog_id == "cpu" and cal.device.name == h.spec.name
    applied = apply_calibration(cal, "cal.yaml", h.spec, find_model(str(target)).spec, find_model(str(draft)).spec, "hf")
    assert not any("not cpu" in w for w in applied.warnings)
    assert cal.fitted_timing and applied.target_timing is not None  # fitted against the host spec
    assert applied.timings  # measured on this host with transformers: they price --gpu cpu --engine hf
