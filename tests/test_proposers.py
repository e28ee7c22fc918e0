"""Proposal methods: head structure and counts against published checkpoints, the head catalogue, config import."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog.loading import load_entries
from planner.catalog.lookup import find_model
from planner.catalog.precisions import kv_format, weight_format
from planner.errors import CatalogError, ConfigImportError, UnknownNameError
from planner.proposers.catalog import HeadEntry, head_catalog, heads_for
from planner.proposers.config_import import head_layout_from_config, mtp_layers_from_config
from planner.proposers.heads import eagle3_params, eagle_params, head_memory, head_params, head_step_cost
from planner.proposers.host import host_memory, host_step_us, ngram_match_comparisons
from planner.proposers.methods import METHODS, method_table
from planner.proposers.mtp import mtp_memory, mtp_module_params, mtp_params, mtp_step_cost

FP16, BF16, FP8 = weight_format("fp16"), weight_format("bf16"), weight_format("fp8")
KV16 = kv_format("fp16")
GB = 10**9  # the Hub prints file sizes in decimal units


def _head(hub_id: str) -> HeadEntry:
    return head_catalog().index[hub_id.lower()]


# --- EAGLE-3 head of Llama-3.1-8B (d = 4096, 32 heads, 8 KV heads of 128, MLP 14336, draft vocab 32000) ---
D, Q, KV, MLP, VOCAB, DRAFT = 4096, 32 * 128, 8 * 128, 14336, 128256, 32000
EAGLE3_FC = 3 * D * D  # fuses low/mid/high target features: 50,331,648
EAGLE3_ATTN = 2 * D * Q + 2 * (2 * D * KV) + Q * D  # q/k/v read 2d (embedding ++ feature): 67,108,864
EAGLE3_MLP = 3 * D * MLP  # 176,160,768
EAGLE3_NORMS = 4 * D  # hidden_norm, input_layernorm, post_attention_layernorm, final norm
EAGLE3_LM_HEAD = D * DRAFT  # 131,072,000
EAGLE3_TOTAL = EAGLE3_FC + EAGLE3_ATTN + EAGLE3_MLP + EAGLE3_NORMS + EAGLE3_LM_HEAD
D2T_T2D_BYTES = 8 * DRAFT + 1 * VOCAB  # int64 d2t + bool t2d


def test_eagle3_llama31_8b_count_by_hand():
    p = eagle3_params(_head("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B").layout)
    assert (p.fusion, p.attention, p.mlp, p.norms, p.lm_head, p.embedding) == (
        EAGLE3_FC, EAGLE3_ATTN, EAGLE3_MLP, EAGLE3_NORMS, EAGLE3_LM_HEAD, 0)
    assert p.total == EAGLE3_TOTAL == 424_689_664
    assert p.vocab_map_bytes == D2T_T2D_BYTES


def test_eagle3_llama31_8b_matches_the_published_850_mb_file():
    # https://huggingface.co/yuhuili/EAGLE3-LLaMA3.1-Instruct-8B: pytorch_model.bin 850 MB, fp16 (HalfStorage)
    entry = _head("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B")
    file_bytes = EAGLE3_TOTAL * 2 + D2T_T2D_BYTES  # 849,763,584: no embedding copy in the file
    assert head_memory(entry.layout, FP16, KV16).weight_bytes == file_bytes
    assert file_bytes == pytest.approx(850 * 10**6, rel=0.001)


def test_eagle1_llama31_8b_matches_the_published_1_55_gb_file_and_shares_the_embedding():
    # EAGLE-1: fc(2d -> d) with bias, one decoder layer (input_layernorm skipped), embedding copy, no lm_head
    fc = 2 * D * D + D
    attn = D * Q + 2 * D * KV + Q * D
    layer = attn + 3 * D * MLP + D
    embedding = VOCAB * D
    entry = _head("leptonai/EAGLE-Llama-3.1-8B-Instruct")
    p = eagle_params(entry.layout)
    assert p.total == fc + layer + embedding == 777_003_008
    assert p.lm_head == 0
    assert p.total * 2 == pytest.approx(1.55 * GB, rel=0.005)  # the Hub's 1.55 GB pytorch_model.bin
    # vLLM points the head at the target's embedding and lm_head: only the fc and the layer stay resident
    assert head_memory(entry.layout, FP16, KV16).weight_bytes == (fc + layer) * 2


def test_every_published_size_matches_the_count():
    for entry in head_catalog():
        if entry.published_bytes is None:
            continue
        p = head_params(entry.layout)
        assert p.total * 2 + p.vocab_map_bytes == pytest.approx(entry.published_bytes, rel=0.01), entry.id


def test_head_kv_cache_is_one_layer_of_its_own():
    layout = _head("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B").layout
    assert head_memory(layout, FP16, KV16).kv_bytes_per_token == 2 * 8 * 128 * 2  # K and V, 8 heads of 128, 2 bytes
    assert head_memory(layout, FP16, KV16, tp=2).kv_bytes_per_token == 2 * 4 * 128 * 2
    assert head_memory(layout, FP16, kv_format("fp8")).kv_bytes_per_token == 2 * 8 * 128


def test_eagle3_step_reads_fc_only_on_the_first_step():
    layout = _head("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B").layout
    first = head_step_cost(layout, FP16, KV16, context_tokens=1000)
    later = head_step_cost(layout, FP16, KV16, context_tokens=1000, first_step=False)
    assert first.weight_bytes_read - later.weight_bytes_read == EAGLE3_FC * 2
    assert later.weight_bytes_read == (EAGLE3_ATTN + EAGLE3_MLP + EAGLE3_NORMS + EAGLE3_LM_HEAD) * 2
    assert first.kv_bytes_read == 1000 * 4096
    # 2 FLOPs per weight, plus q.k and p.v over 1000 tokens for 32 heads of 128
    assert later.flops == 2 * (EAGLE3_ATTN + EAGLE3_MLP + EAGLE3_LM_HEAD) + 2 * 2 * 1000 * 32 * 128


def test_eagle1_step_reads_the_targets_lm_head():
    layout = _head("leptonai/EAGLE-Llama-3.1-8B-Instruct").layout
    step = head_step_cost(layout, FP16, KV16, context_tokens=0, first_step=False)
    assert step.weight_bytes_read == (eagle_params(layout).attention + 3 * D * MLP + D + VOCAB * D) * 2


def test_eagle3_without_aux_hidden_states_has_no_fc():
    layout = _head("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B").layout.model_copy(update={"uses_aux_hidden_states": False})
    assert eagle3_params(layout).total == EAGLE3_TOTAL - EAGLE3_FC


def test_deepseek_v3_mtp_module_is_the_published_11_5b():
    # README_WEIGHTS.md: 'MTP modules: 11.5B unique parameters', i.e. without the shared 0.9B embedding and head
    m = find_model("deepseek-ai/DeepSeek-V3").spec
    p = mtp_module_params(m)
    assert p.embedding == p.lm_head == 0
    assert p.fusion == 2 * 7168 * 7168  # eh_proj over [enorm(embedding); hnorm(hidden)]
    assert p.total == pytest.approx(11.5e9, rel=0.02)
    # one token reads the router, 8 routed experts and the shared expert (each 3 x 7168 x 2048)
    assert p.mlp_active == 7168 * 256 + 256 + 9 * 3 * 7168 * 2048
    assert mtp_params(m, 2).total == 2 * p.total


def test_deepseek_v3_mtp_memory_and_step():
    m = find_model("deepseek-ai/DeepSeek-V3").spec
    mem = mtp_memory(m, 1, FP8, KV16)
    assert mem.kv_bytes_per_token == (512 + 64) * 2  # one MLA latent per token, fp16
    p = mtp_module_params(m)
    assert mem.weight_bytes == p.linear * 1 + p.norms * 2  # FP8 matrices, 16-bit norms, no embedding/head copy
    step = mtp_step_cost(m, FP8, KV16, context_tokens=0)
    # eh_proj + attention + active experts at 1 byte, the target's lm_head (129280 x 7168) at 2 bytes
    assert step.weight_bytes_read == p.fusion + p.attention + p.mlp_active + (129280 * 7168 + p.norms) * 2


def test_ngram_and_suffix_hold_no_gpu_bytes():
    mem = host_memory()
    assert (mem.weight_bytes, mem.kv_bytes_per_token, mem.host_only) == (0, 0, True)
    for method in ("ngram", "suffix"):
        info = method_table()[method]
        assert info.host_only and not info.own_kv_cache
        assert host_step_us(method) is None and info.host_step_note.startswith("UNVERIFIED")
    # vLLM tries n = 5, 4, 3, 2: four KMP scans of at most 2 comparisons per context token
    assert ngram_match_comparisons(1000, min_n=2, max_n=5) == 4 * 2 * 1000
    with pytest.raises(ValueError):
        ngram_match_comparisons(10, min_n=3, max_n=2)


def test_method_table_describes_every_method():
    table = method_table()
    assert tuple(table) == METHODS
    assert all(info.source for info in table.values())
    assert table["eagle3"].reuses_target_embedding and not table["eagle3"].reuses_target_lm_head
    assert table["eagle"].reuses_target_lm_head and table["mtp"].reuses_target_lm_head
    assert not table["draft"].reuses_target_embedding


def test_catalogue_targets_resolve_to_exact_releases():
    entries = list(head_catalog())
    assert {e.method for e in entries} == {"eagle", "eagle3", "mtp"}
    for entry in entries:
        for target in entry.targets:
            assert find_model(target).spec.catalog_id == target, (entry.id, target)


def test_heads_for_a_target():
    assert {h.id for h in heads_for("meta-llama/Llama-3.1-8B-Instruct")} == {
        "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "leptonai/EAGLE-Llama-3.1-8B-Instruct"}
    assert [h.id for h in heads_for("meta-llama/Llama-3.1-8B-Instruct", method="eagle3")] == [
        "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"]
    assert heads_for("meta-llama/Llama-3.1-8B") == []  # Instruct heads do not serve the base release
    [mtp] = heads_for("deepseek-r1")
    assert (mtp.method, mtp.num_nextn_predict_layers) == ("mtp", 1)
    with pytest.raises(UnknownNameError):
        heads_for("no-such-model-xyz")


GOOD_EAGLE3 = """heads:
  - id: a/head
    method: eagle3
    targets: [meta-llama/Llama-3.1-8B-Instruct]
    hidden_size: 4096
    num_attention_heads: 32
    num_kv_heads: 8
    head_dim: 128
    intermediate_size: 14336
    vocab_size: 128256
    draft_vocab_size: 32000
    source: [x]
"""


@pytest.mark.parametrize(("text", "message"), [
    (GOOD_EAGLE3.replace("    draft_vocab_size: 32000\n", ""), "needs draft_vocab_size"),
    (GOOD_EAGLE3.replace("    intermediate_size: 14336\n", ""), "needs intermediate_size"),
    (GOOD_EAGLE3.replace("method: eagle3", "method: medusa"), "field method"),
    (GOOD_EAGLE3.replace("draft_vocab_size: 32000", "draft_vocab_size: 300000"), "exceeds vocab_size"),
    (GOOD_EAGLE3.replace("method: eagle3", "method: mtp\n    num_nextn_predict_layers: 1"),
     "takes its layer shapes from its target"),
    (GOOD_EAGLE3.replace("method: eagle3", "method: mtp"), "needs num_nextn_predict_layers"),
    (GOOD_EAGLE3.replace("    source: [x]\n", "    source: []\n"), "non-empty source"),
    (GOOD_EAGLE3 + "    colour: red\n", "field colour"),
    ("heads: [\n", "invalid YAML"),
])
def test_bad_head_files_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(CatalogError) as err:
        load_entries(tmp_path, "heads", HeadEntry, "head_db")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "bad.yaml" in str(err.value)


def test_good_head_file_loads(tmp_path):
    (tmp_path / "ok.yaml").write_text(GOOD_EAGLE3)
    [entry] = load_entries(tmp_path, "heads", HeadEntry, "head_db")
    assert eagle3_params(entry.layout).total == EAGLE3_TOTAL


LLAMA31_EAGLE3_CONFIG = {  # SpecForge configs/llama3-8B-eagle3.json
    "architectures": ["LlamaForCausalLMEagle3"], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 2048, "model_type": "llama",
    "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 1, "rms_norm_eps": 1e-05,
    "tie_word_embeddings": False, "torch_dtype": "float16", "vocab_size": 128256, "draft_vocab_size": 32000,
}


def test_eagle3_config_import_matches_the_catalogue():
    assert head_layout_from_config(LLAMA31_EAGLE3_CONFIG) == _head("yuhuili/EAGLE3-LLaMA3.1-Instruct-8B").layout


def test_speculators_format_config_import():
    # vllm-project/speculators layout: layer fields nested, draft_vocab_size and target_hidden_size on top
    layer = {k: LLAMA31_EAGLE3_CONFIG[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads",
                                                    "num_key_value_heads", "num_hidden_layers", "vocab_size")}
    cfg = {"architectures": ["Eagle3Speculator"], "draft_vocab_size": 32000, "target_hidden_size": None,
           "transformer_layer_config": layer}
    assert eagle3_params(head_layout_from_config(cfg)).total == EAGLE3_TOTAL


def test_eagle3_config_without_aux_features_and_full_vocab():
    cfg = {**LLAMA31_EAGLE3_CONFIG, "eagle_config": {"use_aux_hidden_state": False}}
    del cfg["draft_vocab_size"]
    layout = head_layout_from_config(cfg)
    assert layout.draft_vocab_size == VOCAB and not layout.uses_aux_hidden_states
    assert eagle3_params(layout).total == EAGLE3_TOTAL - EAGLE3_FC - EAGLE3_LM_HEAD + D * VOCAB


@pytest.mark.parametrize(("change", "message"), [
    ({"draft_vocab_size": "32k"}, "field draft_vocab_size: expected a whole number"),
    ({"hidden_size": 0}, "field hidden_size"),
    ({"architectures": ["LlamaForCausalLM"]}, "is not an EAGLE-3 head"),
    ({"architectures": "LlamaForCausalLMEagle3"}, "field architectures: expected a list"),
    ({"num_attention_heads": 30}, "multiple of num_kv_heads"),
    ({"draft_vocab_size": 200000}, "exceeds vocab_size"),
    ({"eagle_config": {"use_aux_hidden_state": "no"}}, "use_aux_hidden_state"),
    ({"vocab_size": None}, "field vocab_size: missing"),
])
def test_bad_eagle3_configs_are_one_line_errors(change, message):
    with pytest.raises(ConfigImportError) as err:
        head_layout_from_config({**LLAMA31_EAGLE3_CONFIG, **change}, "head/config.json")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("head/config.json: ")


def test_eagle1_config_import_needs_the_method():
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 5120, "intermediate_size": 13824,
           "num_attention_heads": 40, "num_hidden_layers": 1, "vocab_size": 32000}  # EAGLE-Vicuna-13B-v1.3
    layout = head_layout_from_config(cfg, method="eagle", stores_embedding=True)
    assert layout == _head("yuhuili/EAGLE-Vicuna-13B-v1.3").layout


def test_mtp_layers_from_a_target_config():
    assert mtp_layers_from_config({"model_type": "deepseek_v3", "num_nextn_predict_layers": 1}) == 1
    for cfg, message in (({"model_type": "llama"}, "ships no MTP layers"),
                         ({"num_nextn_predict_layers": 0}, "ships no MTP layers"),
                         ({"num_nextn_predict_layers": -1}, "outside 0..")):
        with pytest.raises(ConfigImportError, match=message):
            mtp_layers_from_config(cfg)


_ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 20_000_000), st.floats(allow_nan=True), st.text(max_size=4),
                 st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=2),
                 st.dictionaries(st.sampled_from(["use_aux_hidden_state", "hidden_size", "x"]),
                                 st.one_of(st.booleans(), st.integers(-2, 9000)), max_size=2))
_HEAD_KEYS = ["architectures", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
              "num_hidden_layers", "head_dim", "vocab_size", "draft_vocab_size", "target_hidden_size",
              "eagle_config", "transformer_layer_config"]


@settings(max_examples=150, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(_HEAD_KEYS), _ANY, max_size=4))
def test_head_config_import_is_a_layout_or_one_line(changes):
    try:
        layout = head_layout_from_config({**LLAMA31_EAGLE3_CONFIG, **changes})
    except ConfigImportError as err:
        assert "\n" not in str(err)
    else:
        assert eagle3_params(layout).total > 0


@given(value=_ANY)
def test_mtp_import_is_a_count_or_one_line(value):
    try:
        assert mtp_layers_from_config({"num_nextn_predict_layers": value}) >= 1
    except ConfigImportError as err:
        assert "\n" not in str(err)
