"""Catalogue validation: every entry parses, names are unique, sources present, figures cross-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.catalog.loading import hardware_catalog, load_entries, model_catalog
from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.schemas import GpuSpec, ModelSpec
from planner.errors import CatalogError

DATA = Path(__file__).parent.parent / "planner" / "data"
GPUS = list(hardware_catalog())
MODELS = list(model_catalog())

# Cards the issue requires, by a name a user would type (ids or aliases).
REQUIRED_GPUS = [
    "b200", "h200-sxm", "h100-sxm", "h100-pcie", "h100-nvl", "a100-sxm-40gb", "a100-sxm-80gb",
    "a100-pcie-40gb", "a100-pcie-80gb", "a40", "a30", "l40s", "l40", "l4", "a10g", "a10", "t4",
    "rtx-pro-6000-blackwell", "rtx-6000-ada", "rtx-5000-ada", "rtx-4000-ada", "rtx-a6000", "rtx-a5000",
    "rtx-a4000", "rtx-3060-12gb", "rtx-3090", "rtx-3090-ti", "rtx-4060-ti-16gb", "rtx-4090", "rtx-5070",
    "rtx-5090", "mi300x", "mi325x", "mi250x", "mi210", "rx-7900-xtx", "m1", "m1-ultra", "m2-ultra", "m3-max",
    "m4", "m4-pro", "m4-max",
]
NVML_NAMES = {
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "NVIDIA A100-SXM4-80GB": "a100-sxm-80gb",
    "NVIDIA A100-SXM4-40GB": "a100-sxm-40gb",
    "NVIDIA GeForce RTX 4090": "rtx-4090",
    "Tesla T4": "t4",
    "NVIDIA L4": "l4",
}
REQUIRED_MODELS = [
    "meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-70b-hf", "llama-3.1-8b",
    "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.3-70b", "codellama-7b",
    "codellama-13b", "codellama-34b", "tinyllama-1.1b", "vicuna-7b", "vicuna-13b", "vicuna-33b",
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b",
    "qwen2.5-coder-0.5b", "qwen2.5-coder-32b", "qwen3-0.6b", "qwen3-32b", "qwen3-30b-a3b", "gemma-2-2b",
    "gemma-2-9b", "gemma-2-27b", "mistral-7b", "mixtral-8x7b", "deepseek-v3", "phi-3-mini", "phi-3-medium",
]
# Released repos that are their own entries (issue 8): Instruct, -it, chat, Base, R1 and R1 distills.
REQUIRED_RELEASES = {
    "meta-llama/Llama-3.1-70B-Instruct": "instruct", "meta-llama/Llama-3.2-1B-Instruct": "instruct",
    "meta-llama/Llama-2-7b-chat-hf": "instruct", "google/gemma-2-9b-it": "instruct",
    "Qwen/Qwen2.5-7B-Instruct": "instruct", "Qwen/Qwen2.5-Coder-32B-Instruct": "instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "instruct", "codellama/CodeLlama-34b-Python-hf": "base",
    "Qwen/Qwen3-8B-Base": "base", "deepseek-ai/DeepSeek-V3-Base": "base", "deepseek-ai/DeepSeek-R1": "reasoning",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": "reasoning", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": "reasoning",
}
# What a variant shares with its architecture entry: every figure that costs memory or time.
ARCHITECTURE_FIELDS = ("architecture", "vocab_size", "num_layers", "hidden_size", "num_attention_heads", "num_kv_heads",
                       "head_dim", "intermediate_size", "mlp_gated", "attention_bias", "qk_norm", "norms_per_layer",
                       "sliding_window_tokens", "sliding_window_layers", "tie_word_embeddings", "moe", "mla",
                       "total_params", "active_params", "family", "generation")


def test_catalogue_sizes():
    assert len(GPUS) >= 60
    assert len(MODELS) >= 45


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_required_gpu_present(name):
    assert find_gpu(name)


@pytest.mark.parametrize("nvml, gpu_id", NVML_NAMES.items())
def test_nvml_names_resolve(nvml, gpu_id):
    assert find_gpu(nvml).id == gpu_id


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_required_model_present(name):
    assert find_model(name).spec


@pytest.mark.parametrize("release, kind", REQUIRED_RELEASES.items())
def test_required_release_is_its_own_entry(release, kind):
    spec = find_model(release).spec
    assert (spec.id, spec.catalog_id, spec.kind) == (release, release, kind)


@pytest.mark.parametrize("variant", [m for m in MODELS if m.variant_of], ids=lambda m: m.id)
def test_every_variant_shares_its_entrys_architecture(variant):
    entry = model_catalog().index[variant.variant_of.lower()]
    assert entry.variant_of is None and entry.catalog_id == entry.id
    assert {f: getattr(variant, f) for f in ARCHITECTURE_FIELDS} == {f: getattr(entry, f) for f in ARCHITECTURE_FIELDS}
    own = [entry.source] if isinstance(entry.source, str) else entry.source
    assert variant.id in variant.source[0] and variant.source[-len(own):] == own  # its own source, then the figures'


def test_repo_names_resolve_without_the_organisation():
    for m in MODELS:
        if "/" in m.id:
            assert find_model(m.id.rsplit("/", 1)[-1]).spec.catalog_id == m.id


@pytest.mark.parametrize("entry", GPUS + MODELS, ids=lambda e: e.id)
def test_every_entry_has_a_source(entry):
    sources = [entry.source] if isinstance(entry.source, str) else entry.source
    assert sources and all(len(s) > 10 for s in sources)


def test_vendors_and_families_covered():
    assert {g.vendor for g in GPUS} >= {"nvidia", "amd", "apple"}
    assert {g.memory_class for g in GPUS} == {"hbm", "gddr", "unified"}


# Families whose vendor material breaks the doubling: Gaudi 3's MME runs FP8 at the BF16 rate (Intel,
# Hot Chips 2024: 1835 / 1835), Blackwell Ultra's NVFP4 path is 3x its FP8 (NVIDIA: 15 PF / 5 PF dense).
FP8_OVER_FP16 = {"gaudi3": 1.0}
FP4_OVER_FP8 = {"blackwell-ultra": 3.0}


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.id)
def test_dense_tensor_figures_are_consistent(gpu):
    # Dense FP8 is twice dense FP16 on every part that has both; a sparse figure slipped in
    # for one of them breaks the ratio.
    if gpu.fp8_tensor_tflops and gpu.fp16_tensor_tflops:
        ratio = FP8_OVER_FP16.get(gpu.family, 2.0)
        assert gpu.fp8_tensor_tflops / gpu.fp16_tensor_tflops == pytest.approx(ratio, rel=0.05)
    if gpu.fp4_tensor_tflops and gpu.fp8_tensor_tflops:
        # GeForce Blackwell runs FP8 with FP32 accumulate (the catalogue's convention) at half rate
        # but FP4 at full rate: RTX Blackwell whitepaper Table 3, RTX 5090 419 vs 1676 dense.
        consumer_blackwell = (gpu.family, gpu.segment) == ("blackwell", "consumer")
        ratio = 4.0 if consumer_blackwell else FP4_OVER_FP8.get(gpu.family, 2.0)
        assert gpu.fp4_tensor_tflops / gpu.fp8_tensor_tflops == pytest.approx(ratio, rel=0.05)
    if gpu.fp16_tensor_tflops and gpu.fp32_tflops and gpu.vendor == "nvidia":
        assert gpu.fp16_tensor_tflops >= gpu.fp32_tflops


def test_every_target_has_a_same_tokenizer_draft():
    for target in MODELS:
        drafts = [m for m in MODELS if m.tokenizer == target.tokenizer and m is not target]
        smallest = min((m.total_params or 0) for m in MODELS if m.tokenizer == target.tokenizer)
        if (target.total_params or 0) > smallest:
            assert drafts, f"{target.id} has no draft sharing tokenizer {target.tokenizer}"


def test_tokenizer_identity_implies_same_tokenizer_size():
    by_tok: dict[str, set[int]] = {}
    for m in MODELS:
        by_tok.setdefault(m.tokenizer, set()).add(m.tokenizer_vocab_size)
    assert all(len(sizes) == 1 for sizes in by_tok.values()), by_tok


def _spec_rows():
    doc = yaml.safe_load((DATA / "measurements.yaml").read_text())
    return {row["id"]: row for row in doc["C_gpu_specs"]}


# measurements.yaml C_gpu_specs rows (spec sheets) -> catalogue ids.
SPEC_ROWS = {
    "C-01": "h100-sxm", "C-02": "h100-pcie", "C-04": "h200-sxm", "C-07": "b200", "C-08": "a100-sxm-80gb",
    "C-09": "a100-sxm-40gb", "C-10": "a100-pcie-80gb", "C-11": "a100-pcie-40gb", "C-12": "l40s", "C-14": "l4",
    "C-15": "a10", "C-21": "rtx-4090", "C-22": "rtx-5090", "C-23": "rtx-6000-ada", "C-24": "rtx-a6000",
    "C-25": "mi300x", "C-26": "mi325x", "C-30": "m4-max", "C-31": "m4-pro",
}


# B200: C-07 carries the GTC-2024 announcement (192 GB, 8 TB/s); shipping HGX/DGX B200 expose 180 GB
# per GPU (DGX B200 user guide: 1,440 GB for 8) at 7.7 TB/s (NVIDIA's HGX B200 table and Blackwell
# datasheet), which is what a fit must use (issue 11).
SHIPPED_PART_DIFFERS = {"C-07"}


@pytest.mark.parametrize("row_id, gpu_id", SPEC_ROWS.items())
def test_figures_agree_with_published_spec_sheets(row_id, gpu_id):
    row, gpu = _spec_rows()[row_id], find_gpu(gpu_id)
    if isinstance(row.get("mem_bw_gb_s"), (int, float)) and row_id not in SHIPPED_PART_DIFFERS:
        assert gpu.memory_bandwidth_gb_s == pytest.approx(row["mem_bw_gb_s"], rel=0.03)
    if isinstance(row.get("memory_gb"), (int, float)) and row_id not in SHIPPED_PART_DIFFERS:
        assert gpu.memory_gib == pytest.approx(row["memory_gb"], rel=0.01)
    for src, field in (("bf16_dense_tflops", "fp16_tensor_tflops"), ("fp8_dense_tflops", "fp8_tensor_tflops"),
                       ("fp4_dense_tflops", "fp4_tensor_tflops")):
        if isinstance(row.get(src), (int, float)):
            assert getattr(gpu, field) == pytest.approx(row[src], rel=0.02), (src, field)


# --- malformed catalogues -------------------------------------------------------------------------

GOOD_GPU = """
gpus:
  - id: g1
    name: Good One
    aliases: [shared-name]
    vendor: nvidia
    family: test
    segment: datacenter
    memory_gib: 10
    memory_type: HBM3
    memory_bandwidth_gb_s: 1000
    tdp_w: 100
    interconnect: {kind: pcie, bandwidth_gb_s: 64}
    source: test fixture
"""


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_duplicate_ids_across_files_fail(tmp_path):
    folder = _write(tmp_path, {"a.yaml": GOOD_GPU, "b.yaml": GOOD_GPU.replace("shared-name", "other")})
    with pytest.raises(CatalogError, match=r"hw/b\.yaml: entry 'g1': duplicate id \(also in hw/a\.yaml\)"):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_duplicate_alias_across_files_fails(tmp_path):
    other = GOOD_GPU.replace("id: g1", "id: g2").replace("Good One", "Other")
    folder = _write(tmp_path, {"a.yaml": GOOD_GPU, "b.yaml": other})
    with pytest.raises(CatalogError, match=r"name 'shared-name' is already used by 'g1'"):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_bad_field_names_file_entry_and_field(tmp_path):
    folder = _write(tmp_path, {"a.yaml": GOOD_GPU.replace("memory_bandwidth_gb_s: 1000", "memory_bandwidth_gb_s: fast")})
    with pytest.raises(CatalogError, match=r"^hw/a\.yaml: entry 'g1': field memory_bandwidth_gb_s: "):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_unknown_field_is_rejected(tmp_path):
    folder = _write(tmp_path, {"a.yaml": GOOD_GPU.replace("tdp_w: 100", "tdp_w: 100\n    tflops: 5")})
    with pytest.raises(CatalogError, match=r"entry 'g1': field tflops: Extra inputs are not permitted"):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_missing_source_is_rejected(tmp_path):
    folder = _write(tmp_path, {"a.yaml": GOOD_GPU.replace("source: test fixture", "source: ''")})
    with pytest.raises(CatalogError, match=r"field source: .*non-empty source"):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_invalid_yaml_names_file_and_line(tmp_path):
    folder = _write(tmp_path, {"a.yaml": "gpus:\n  - id: [unclosed\n"})
    with pytest.raises(CatalogError, match=r"^hw/a\.yaml: line \d+: invalid YAML"):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_wrong_top_level_key(tmp_path):
    folder = _write(tmp_path, {"a.yaml": GOOD_GPU.replace("gpus:", "models:")})
    with pytest.raises(CatalogError, match="expected a top-level list under 'gpus'"):
        load_entries(folder, "gpus", GpuSpec, "hw")


def test_model_consistency_rules(tmp_path):
    text = yaml.safe_dump({"models": [{
        "id": "x/y", "family": "f", "generation": "1", "architecture": "llama", "tokenizer": "t",
        "tokenizer_vocab_size": 200, "vocab_size": 100, "num_layers": 2, "hidden_size": 8,
        "num_attention_heads": 2, "num_kv_heads": 2, "head_dim": 4, "intermediate_size": 16,
        "tie_word_embeddings": False, "max_context_tokens": 64, "source": "fixture"}]})
    folder = _write(tmp_path, {"m.yaml": text})
    with pytest.raises(CatalogError, match=r"entry 'x/y': field \(entry\): .*smaller than tokenizer_vocab_size"):
        load_entries(folder, "models", ModelSpec, "md")


def test_yaml_is_read_with_a_safe_loader(tmp_path):
    folder = _write(tmp_path, {"a.yaml": "gpus: !!python/object/apply:os.system ['echo pwned']\n"})
    with pytest.raises(CatalogError, match="invalid YAML"):
        load_entries(folder, "gpus", GpuSpec, "hw")
