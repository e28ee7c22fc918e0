"""Issue 11 point 1: config.json import of the 2025-26 architectures, checked against published totals.

Every published figure is cited in tests/data/hf_configs/<org>__<repo>/SOURCE.txt; KV bytes per
token are worked out by hand below for each attention kind (sliding, chunked, sinks, hybrid).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.catalog.hf_config import SUPPORTED_MODEL_TYPES, load_model_dir, spec_from_config, spec_to_config
from planner.catalog.hf_import.quant import checkpoint_format
from planner.catalog.precisions import KvFormat, weight_format
from planner.errors import ConfigImportError
from planner.costmodel.profiles import model_profile
from planner.footprint import embedding_params, kv_cache_bytes, kv_cache_bytes_per_token, moe_layer_count, \
    parameter_counts, weight_bytes

CONFIGS = Path(__file__).parent / "data" / "hf_configs"
BF16_KV = KvFormat(name="fp16", bits_per_element=16, source="test")
GIB = 2**30
MXFP4_MOE = weight_format("mxfp4-moe")  # MXFP4 on the routed experts (planner/catalog/precisions.py)


def spec(repo: str):
    return load_model_dir(CONFIGS / repo.replace("/", "__")).spec


def _streamed(c):
    return c.streamed_per_token


def _active(c):
    return c.active


def _active_without_embeddings(c):
    return c.active - c.embedding - c.lm_head


# (repo, published total, its last published digit, published active or None, how the source counts active,
#  its last digit). A figure published as "17B" stands for 16.5-17.5B: the check is 1% or half its last digit.
PUBLISHED = [
    ("google/gemma-3-1b-it", 999_885_952, 1, None, None, 1),
    ("google/gemma-3-27b-it", 27_432_406_640, 1, None, None, 1),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", 109e9, 1e9, 17e9, _active, 1e9),
    ("meta-llama/Llama-4-Maverick-17B-128E-Instruct", 400e9, 1e9, 17e9, _active, 1e9),
    ("openai/gpt-oss-120b", 116.83e9, 0.01e9, 5.13e9, _streamed, 0.01e9),
    ("openai/gpt-oss-20b", 20.91e9, 0.01e9, 3.61e9, _streamed, 0.01e9),
    ("Qwen/Qwen3-235B-A22B", 235e9, 1e9, 22e9, _active, 1e9),
    ("mistralai/Mistral-Small-24B-Instruct-2501", 23.6e9, 0.1e9, None, None, 1),
    ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", 24e9, 1e9, None, None, 1),
    ("microsoft/phi-4", 14.7e9, 0.1e9, None, None, 1),
    ("zai-org/GLM-4.5-Air", 106e9, 1e9, 12e9, _active_without_embeddings, 1e9),
    ("facebook/opt-125m", 125e6, 1e6, None, None, 1),
    ("facebook/opt-6.7b", 6.7e9, 0.1e9, None, None, 1),
    ("Salesforce/codegen-16B-mono", 16.1e9, 0.1e9, None, None, 1),
    ("bigcode/starcoder", 15.5e9, 0.1e9, None, None, 1),
]


def _close(computed: float, published: float, digit: float) -> bool:
    return abs(computed - published) <= max(0.01 * published, digit / 2)


@pytest.mark.parametrize("repo,total,digit,active,measure,active_digit", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_counts_match_published_totals(repo, total, digit, active, measure, active_digit):
    c = parameter_counts(spec(repo))
    assert _close(c.total, total, digit), (c.total, total)
    if active is not None:
        assert _close(measure(c), active, active_digit), (measure(c), active)


def test_every_config_has_a_source_with_a_published_figure():
    folders = sorted(CONFIGS.iterdir())
    assert len(folders) >= 15
    for folder in folders:
        text = (folder / "SOURCE.txt").read_text()
        assert "https://huggingface.co/" in text and "published total:" in text


def test_gpt_oss_120b_components_match_the_model_card_table():
    # Card table 1: MLP 114.71B, Attention 0.96B, Embed + Unembed 1.16B.
    c = parameter_counts(spec("openai/gpt-oss-120b"))
    # Per layer by hand: 128 experts x (2880 x 5760 + 5760 + 2880 x 2880 + 2880) + router 2880 x 128 + 128.
    assert c.mlp == 36 * (128 * 24_891_840 + 368_768) == 114_714_874_368
    # q 2880x4096, k/v 2880x512, o 4096x2880, their biases (4096 + 512 + 512 + 2880) and 64 sinks.
    assert c.attention == 36 * 26_550_144 == 955_805_184
    assert c.embedding + c.lm_head == 2 * 201_088 * 2880 == 1_158_266_880


def test_mxfp4_experts_give_the_published_checkpoint_size():
    # Card: gpt-oss-120b 60.8 GiB, gpt-oss-20b 12.8 GiB; experts at 4.25 bits, everything else bf16.
    for repo, gib in (("openai/gpt-oss-120b", 60.8), ("openai/gpt-oss-20b", 12.8)):
        m = spec(repo)
        c = parameter_counts(m)
        wb = weight_bytes(m, MXFP4_MOE, c)
        assert wb.experts == c.experts * 4.25 / 8
        assert wb.total == pytest.approx(c.experts * 4.25 / 8 + (c.total - c.experts) * 2)
        assert wb.total / GIB == pytest.approx(gib, rel=0.01)
        # The cost model prices one expert at the experts' format, the rest at 16 bits.
        p = model_profile(m, MXFP4_MOE, BF16_KV)
        assert p.expert_bytes * m.moe.num_experts == pytest.approx(wb.experts)
        assert p.bytes_per_param == 2


def test_gpt_oss_import_reads_sinks_biases_layer_types_and_mxfp4():
    m = spec("openai/gpt-oss-20b")
    assert (m.attention_sinks, m.attention_bias, m.attention_out_bias) == (True, True, True)
    assert (m.moe.router_linear_bias, m.moe.expert_bias, m.moe.num_experts, m.moe.experts_per_token) == (True, True, 32, 4)
    assert (m.sliding_window_tokens, m.sliding_window_layers) == (128, 12)
    assert m.weight_format == "mxfp4-moe"


def test_llama4_interleaving_and_chunks():
    scout, maverick = spec("meta-llama/Llama-4-Scout-17B-16E-Instruct"), spec("meta-llama/Llama-4-Maverick-17B-128E-Instruct")
    assert (moe_layer_count(scout), moe_layer_count(maverick)) == (48, 24)
    assert maverick.intermediate_size == 16384 and maverick.moe.expert_intermediate_size == 8192
    assert maverick.moe.shared_expert_intermediate_size == 8192
    # no_rope_layers [1, 1, 1, 0] x 12: 36 RoPE layers attend within 8192-token chunks, 12 NoPE layers globally.
    assert (scout.chunked_attention_tokens, scout.chunked_attention_layers) == (8192, 36)
    assert scout.architecture == "llama4" and scout.tie_word_embeddings is False


def test_glm45_air_layout_and_mtp_not_counted():
    m = spec("zai-org/GLM-4.5-Air")
    assert m.num_layers == 46  # num_nextn_predict_layers (1) is an extra MTP layer, not among them
    assert (m.moe.first_dense_layers, m.moe.num_shared_experts, m.moe.router_bias, m.attention_bias) == (1, 1, True, True)


def test_old_architectures_exact_counts():
    # OPT-125m by hand: tokens 50272 x 768, positions 2050 x 768, 12 x (4 x (768^2 + 768)
    # + 768 x 3072 + 3072 + 3072 x 768 + 768 + 2 LayerNorms x 2 x 768), final LayerNorm 2 x 768.
    assert parameter_counts(spec("facebook/opt-125m")).total == 125_239_296
    # CodeGen-350M: 20 x (4 x 1024^2 + 2 x 1024 x 4096 + 4096 + 1024 + 2 x 1024) + 2 x 51200 x 1024
    # + lm_head bias 51200 + ln_f 2 x 1024 (356.7M: its "350M" name is rounded down).
    assert parameter_counts(spec("Salesforce/codegen-350M-mono")).total == 356_712_448
    sc = spec("bigcode/starcoder")
    assert (sc.num_kv_heads, sc.position_embedding_rows, sc.norm_type) == (1, 8192, "layer")


def test_opt_word_embed_projection_is_counted():
    cfg = {"model_type": "opt", "hidden_size": 1024, "ffn_dim": 4096, "num_hidden_layers": 24,
           "num_attention_heads": 16, "vocab_size": 50272, "max_position_embeddings": 2048, "word_embed_proj_dim": 512}
    m = spec_from_config(cfg, "opt-350m")
    # 50272 x 512 table + project_in 512 x 1024 + project_out 1024 x 512.
    assert embedding_params(m) == 50272 * 512 + 2 * 512 * 1024 == 26_787_840


# KV cache per token, bf16, worked out by hand: 2 (K and V) x kv_heads x head_dim x 2 bytes per layer.
def test_kv_sliding_gemma3():
    m = spec("google/gemma-3-1b-it")  # 26 layers, 1 KV head of 256; every 6th layer global: 4 global, 22 sliding
    assert kv_cache_bytes_per_token(m, BF16_KV) == 26 * 2 * 1 * 256 * 2 == 26_624
    assert kv_cache_bytes(m, BF16_KV, 32768) == 4 * 32768 * 1024 + 22 * 512 * 1024 == 145_752_064
    assert kv_cache_bytes(m, BF16_KV, 32768, sliding_window=False) == 26 * 32768 * 1024
    big = spec("google/gemma-3-27b-it")  # 62 layers: 10 global, 52 with a 1024 window; 16 KV heads of 128
    assert (big.sliding_window_layers, big.sliding_window_tokens) == (52, 1024)
    assert kv_cache_bytes(big, BF16_KV, 131072) == 10 * 131072 * 8192 + 52 * 1024 * 8192 == 11_173_625_856


def test_kv_chunked_llama4():
    m = spec("meta-llama/Llama-4-Scout-17B-16E-Instruct")  # 8 KV heads of 128: 4096 B per layer
    assert kv_cache_bytes_per_token(m, BF16_KV) == 48 * 4096 == 196_608
    # vLLM / llama.cpp keep one chunk for the 36 chunked layers; the 12 global layers keep everything.
    assert kv_cache_bytes(m, BF16_KV, 1_000_000) == 12 * 1_000_000 * 4096 + 36 * 8192 * 4096 == 50_359_959_552
    # SGLang without its opt-in hybrid cache: every layer holds every token.
    assert kv_cache_bytes(m, BF16_KV, 1_000_000, chunked=False) == 48 * 1_000_000 * 4096
    # The cost model reads the chunked layers like a window of 8192.
    p = model_profile(m, MXFP4_MOE.model_copy(update={"experts_only": False, "bits_per_weight": 16}), BF16_KV)
    assert (p.window_tokens, p.kv_bytes_per_token_window, p.kv_bytes_per_token_full) == (8192, 36 * 4096, 12 * 4096)


def test_kv_sinks_gpt_oss_cost_nothing():
    m = spec("openai/gpt-oss-120b")  # 8 KV heads of 64: 2048 B per layer; 18 sliding (128) + 18 full
    assert kv_cache_bytes_per_token(m, BF16_KV) == 36 * 2048 == 73_728
    no_sinks = m.model_copy(update={"attention_sinks": False})
    assert kv_cache_bytes(m, BF16_KV, 131072) == kv_cache_bytes(no_sinks, BF16_KV, 131072)
    assert kv_cache_bytes(m, BF16_KV, 131072) == 18 * 131072 * 2048 + 18 * 128 * 2048 == 4_836_556_800
    # The 64 sink logits per layer are parameters, not cache.
    assert parameter_counts(m).attention - parameter_counts(no_sinks).attention == 36 * 64


def test_kv_hybrid_engines_differ_only_on_local_layers():
    from planner.engines import engine_spec

    m = spec("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    tokens = 65536
    by_engine = {}
    for name in ("vllm", "sglang", "hf"):
        e = engine_spec(name)
        by_engine[name] = kv_cache_bytes(m, BF16_KV, tokens, 1, e.sliding_window_kv, e.chunked_attention_kv)
    assert by_engine["vllm"] == 12 * tokens * 4096 + 36 * 8192 * 4096
    assert by_engine["sglang"] == by_engine["hf"] == 48 * tokens * 4096
    # A hybrid sliding + full model on an engine without a hybrid cache (transformers) caches every layer fully.
    g = spec("google/gemma-3-27b-it")
    e = engine_spec("hf")
    assert kv_cache_bytes(g, BF16_KV, tokens, 1, e.sliding_window_kv, e.chunked_attention_kv) == 62 * tokens * 8192


@pytest.mark.parametrize("folder", sorted(CONFIGS.iterdir()), ids=lambda p: p.name)
def test_new_architectures_round_trip(folder):
    m = load_model_dir(folder).spec
    back = spec_from_config(spec_to_config(m), "roundtrip", model_id=m.id)
    assert back.model_dump(exclude={"source", "tokenizer", "weight_format"}) == \
        m.model_dump(exclude={"source", "tokenizer", "weight_format"})
    assert parameter_counts(back) == parameter_counts(m)


@pytest.mark.parametrize("quant,moe,expected", [
    ({"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}, True, "mxfp4-moe"),
    ({"quant_method": "mxfp4"}, False, "mxfp4"),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, False, "fp8-block"),
    ({"quant_method": "fp8", "activation_scheme": "static"}, False, "fp8"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, False, "nvfp4"),
    ({"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float", "group_size": 16}}}}, False, "nvfp4"),
    ({"quant_method": "awq"}, False, "int4-awq"),
    ({"quant_method": "bitsandbytes"}, False, None),
])
def test_quantization_config_names_the_format(quant, moe, expected):
    assert checkpoint_format(quant, "cfg", moe) == expected


def test_supported_types_include_the_new_ones():
    for t in ("gemma3", "gemma3_text", "llama4", "llama4_text", "gpt_oss", "mistral3", "glm4_moe", "opt",
              "codegen", "gpt_bigcode", "qwen3_moe", "phi3"):
        assert t in SUPPORTED_MODEL_TYPES


def test_catalogue_weight_format_is_the_default_precision(monkeypatch):
    from planner.catalog import lookup

    m = spec("openai/gpt-oss-20b").model_copy(update={"id": "openai/gpt-oss-20b"})
    monkeypatch.setattr(lookup, "resolve", lambda name, index, what: m)
    assert lookup.find_model("openai/gpt-oss-20b").checkpoint_precision == "mxfp4-moe"


def test_layer_types_must_name_every_layer():
    cfg = spec_to_config(spec("openai/gpt-oss-20b"))
    cfg["layer_types"] = cfg["layer_types"] * 2
    with pytest.raises(ConfigImportError, match="layer_types: 48 entries for 24 layers"):
        spec_from_config(cfg, "config.json")
