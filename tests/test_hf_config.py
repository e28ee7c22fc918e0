"""config.json and safetensors import: real configs, round trips, exact counts, bad files."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from planner.catalog.hf_config import load_model_dir, spec_from_config, spec_to_config
from planner.catalog.loading import model_catalog
from planner.catalog.lookup import find_model
from planner.catalog.safetensors import read_safetensors_header
from planner.errors import ConfigImportError
from planner.footprint import parameter_counts

CONFIGS = Path(__file__).parent / "data" / "configs"
ARCH_FIELDS = (
    "architecture", "num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
    "intermediate_size", "vocab_size", "tie_word_embeddings", "attention_bias", "qk_norm", "norms_per_layer",
    "sliding_window_tokens", "sliding_window_layers", "moe", "mla",
    # issue 11
    "mlp_gated", "chunked_attention_tokens", "chunked_attention_layers", "attention_sinks", "attention_out_bias",
    "mlp_bias", "lm_head_bias", "norm_type", "position_embedding_rows", "word_embed_proj_dim", "vision_params",
)


def _arch(spec):
    return {f: getattr(spec, f) for f in ARCH_FIELDS}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_real_config_matches_catalogue_entry(path):
    repo_id = path.stem.replace("--", "/")
    imported = find_model(str(path))
    entry = find_model(repo_id).spec
    assert _arch(imported.spec) == _arch(entry)
    assert parameter_counts(imported.spec).total == parameter_counts(entry).total
    # The import recognises the catalogue model and adopts its tokenizer identity.
    assert imported.spec.tokenizer == entry.tokenizer


@pytest.mark.parametrize("model", list(model_catalog()), ids=lambda m: m.id)
def test_catalogue_entry_round_trips_through_config_json(model):
    back = spec_from_config(spec_to_config(model), "roundtrip", model_id=model.id)
    assert _arch(back) == _arch(model)
    assert parameter_counts(back) == parameter_counts(model)


def test_deepseek_quantization_config_names_block_fp8():
    # quant_method fp8 with weight_block_size [128, 128]: block-scaled FP8 (issue 11).
    assert find_model(str(CONFIGS / "deepseek-ai--DeepSeek-V3.json")).checkpoint_precision == "fp8-block"


def test_text_config_nesting_is_read():
    inner = json.loads((CONFIGS / "meta-llama--Llama-3.1-8B.json").read_text())
    spec = spec_from_config({"model_type": "llama", "text_config": inner}, "nested")
    assert spec.num_layers == 32 and spec.num_kv_heads == 8


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A header-valid safetensors file with zero-filled data."""
    sizes = {"BF16": 2, "F32": 4, "I32": 4, "F8_E4M3": 1}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def _tiny_config(tmp_path: Path, **extra) -> Path:
    cfg = {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 8, "num_attention_heads": 2,
           "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 32, "max_position_embeddings": 64,
           "torch_dtype": "bfloat16", **extra}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return tmp_path


def _tiny_tensors(with_lm_head: bool) -> dict[str, tuple[str, list[int]]]:
    t = {
        "model.embed_tokens.weight": ("BF16", [32, 8]),
        "model.layers.0.self_attn.q_proj.weight": ("BF16", [8, 8]),
        "model.layers.0.self_attn.k_proj.weight": ("BF16", [4, 8]),
        "model.layers.0.self_attn.v_proj.weight": ("BF16", [4, 8]),
        "model.layers.0.self_attn.o_proj.weight": ("BF16", [8, 8]),
        "model.layers.0.mlp.gate_proj.weight": ("BF16", [16, 8]),
        "model.layers.0.mlp.up_proj.weight": ("BF16", [16, 8]),
        "model.layers.0.mlp.down_proj.weight": ("BF16", [8, 16]),
        "model.layers.0.input_layernorm.weight": ("BF16", [8]),
        "model.layers.0.post_attention_layernorm.weight": ("BF16", [8]),
        "model.norm.weight": ("BF16", [8]),
    }
    if with_lm_head:
        t["lm_head.weight"] = ("BF16", [32, 8])
    return t


def test_safetensors_header_gives_exact_params_and_dtype(tmp_path):
    folder = _tiny_config(tmp_path)
    _write_safetensors(folder / "model.safetensors", _tiny_tensors(with_lm_head=False))
    imported = load_model_dir(folder)
    expected = sum(math.prod(shape) for _, shape in _tiny_tensors(False).values())
    assert imported.spec.total_params == expected
    assert imported.checkpoint.dtype == "bfloat16"
    # No lm_head tensor and no tie_word_embeddings key: the embedding is tied.
    assert imported.spec.tie_word_embeddings is True
    assert parameter_counts(imported.spec).total == expected


def test_sharded_checkpoint_sums_every_shard(tmp_path):
    folder = _tiny_config(tmp_path, tie_word_embeddings=False)
    tensors = list(_tiny_tensors(with_lm_head=True).items())
    _write_safetensors(folder / "model-00001-of-00002.safetensors", dict(tensors[:6]))
    _write_safetensors(folder / "model-00002-of-00002.safetensors", dict(tensors[6:]))
    spec = load_model_dir(folder).spec
    assert spec.total_params == parameter_counts(spec).total


def test_index_without_shards_uses_total_size(tmp_path):
    folder = _tiny_config(tmp_path, tie_word_embeddings=False)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 2 * 1000}, "weight_map": {"lm_head.weight": "a.safetensors"}})
    )
    assert load_model_dir(folder).spec.total_params == 1000


def test_tokenizer_json_gives_identity_and_size(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        _tiny_config(folder)
        vocab = {f"t{i}": i for i in range(30)}
        (folder / "tokenizer.json").write_text(json.dumps(
            {"model": {"vocab": vocab}, "added_tokens": [{"id": 30, "content": "<s>"}]}))
    sa, sb = load_model_dir(a).spec, load_model_dir(b).spec
    assert sa.tokenizer == sb.tokenizer and sa.tokenizer.startswith("sha256:")
    assert sa.tokenizer_vocab_size == 31


def test_malformed_config_names_file_and_field(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(ConfigImportError, match=r"config\.json: field num_hidden_layers: missing"):
        load_model_dir(tmp_path)


def test_invalid_value_names_the_field(tmp_path):
    _tiny_config(tmp_path, num_attention_heads=-2)
    with pytest.raises(ConfigImportError, match=r"config\.json: (entry .*)?field num_attention_heads"):
        load_model_dir(tmp_path)


def test_invalid_json_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigImportError, match=r"invalid JSON at line 1"):
        load_model_dir(tmp_path)


def test_unsupported_architecture(tmp_path):
    _tiny_config(tmp_path, model_type="bert")
    with pytest.raises(ConfigImportError, match="model_type: 'bert' is not supported"):
        load_model_dir(tmp_path)


def test_truncated_safetensors_refused(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x01\x02")
    with pytest.raises(ConfigImportError, match="not a safetensors file"):
        read_safetensors_header(bad)
    bad.write_bytes(struct.pack("<Q", 10**12))
    with pytest.raises(ConfigImportError, match="implausible"):
        read_safetensors_header(bad)
