"""The head catalogue (head_db/): entries against published sizes and hand counts, heads per target,
config.json import of head and target folders through resolve_proposer, and `specplan heads`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from planner.catalog.lookup import find_model
from planner.catalog.precisions import kv_format, weight_format
from planner.cli import main
from planner.errors import ConfigImportError, SpecplanError, UnknownNameError
from planner.outputs.heads_view import head_row, head_sources, list_heads
from planner.proposers.catalog import head_catalog, heads_for
from planner.proposers.heads import eagle3_params
from planner.proposers.mtp import mtp_module_params
from planner.proposers.proposer import resolve_proposer

DATA = Path(__file__).parent / "data" / "hf_configs"
GLM_AIR_CONFIG = DATA / "zai-org__GLM-4.5-Air" / "config.json"
SERVES = ("eagle3", "eagle", "mtp", "ngram", "suffix")
BF16, KV16 = weight_format("bf16"), kv_format("fp16")

# --- GLM-4.5-Air's MTP layer by hand (config.json: d 4096, 96 heads / 8 KV heads of 128, q/k/v bias,
# 128 experts of 1408 top-8, one shared expert of 1408, router 4096 x 128 + e_score_correction_bias) ---
D, Q, KV, E = 4096, 96 * 128, 8 * 128, 1408
GLM_EH_PROJ = 2 * D * D  # 33,554,432
GLM_ATTN = (D * Q + Q) + 2 * (D * KV + KV) + Q * D  # 109,066,240: biases on q/k/v, none on o_proj
GLM_EXPERT = 3 * D * E  # 17,301,504: gate, up, down
GLM_ROUTER = D * 128 + 128
GLM_MLP = 128 * GLM_EXPERT + GLM_EXPERT + GLM_ROUTER
GLM_NORMS = 5 * D  # input/post-attention layernorms + enorm, hnorm, shared_head.norm
GLM_MTP = GLM_EH_PROJ + GLM_ATTN + GLM_MLP + GLM_NORMS


def test_glm45_air_mtp_layer_by_hand():
    p = mtp_module_params(find_model("zai-org/GLM-4.5-Air").spec)
    assert (p.fusion, p.attention, p.mlp, p.norms) == (GLM_EH_PROJ, GLM_ATTN, GLM_MLP, GLM_NORMS)
    assert p.total == GLM_MTP == 2_375_059_584
    assert p.mlp_active == GLM_ROUTER + 9 * GLM_EXPERT  # 8 routed experts and the shared one
    # The card's 106B leaves the MTP layer out; the catalogue total (formula 106.85B) and the layer
    # come to 109.2B, the order of the Hub's "110B" safetensors figure that counts it.
    row = head_row(head_catalog().index["zai-org/glm-4.5-air"])
    assert (row["parameters"], row["weight_format"], row["num_nextn_predict_layers"]) == (GLM_MTP, "bf16", 1)
    assert row["resident_gib"] * 2**30 == pytest.approx(GLM_MTP * 2)


@pytest.mark.parametrize("entry", [h for h in head_catalog() if h.published_bytes], ids=lambda h: h.id)
def test_every_published_head_size_matches_its_count(entry):
    # The Hub prints decimal sizes to 3 significant figures: within 1% of the count at the stored dtype.
    row = head_row(entry)
    assert abs(row["relative_difference"]) <= 0.01, (entry.id, row["checkpoint_bytes"], entry.published_bytes)


def test_heads_per_target_and_method():
    assert [(h.id, h.method) for h in heads_for("glm-4.5-air")] == [("zai-org/GLM-4.5-Air", "mtp")]
    assert heads_for("glm-4.5-air", method="eagle3") == []
    assert {h.id for h in heads_for("lmsys/vicuna-13b-v1.3")} == {"yuhuili/EAGLE-Vicuna-13B-v1.3",
                                                                  "yuhuili/EAGLE3-Vicuna1.3-13B"}
    assert [h.id for h in heads_for("deepseek-ai/DeepSeek-V3-0324", "mtp")] == ["deepseek-ai/DeepSeek-V3-0324"]
    assert [h.id for h in heads_for("openai/gpt-oss-120b")] == ["lmsys/EAGLE3-gpt-oss-120b-bf16"]
    assert heads_for("openai/gpt-oss-120b", method="eagle") == []
    assert [r["id"] for r in list_heads("eagle", "meta-llama/Llama-3.1-405B-Instruct")] == [
        "leptonai/EAGLE-Llama-3.1-405B-Instruct"]
    assert {r["method"] for r in list_heads("mtp")} == {"mtp"}
    with pytest.raises(SpecplanError, match="unknown head method 'medusa'; choose from eagle, eagle3, mtp"):
        list_heads("medusa")
    with pytest.raises(UnknownNameError):
        list_heads(target="no-such-model-xyz")


# vllm-project/speculators format, https://huggingface.co/nm-testing/EAGLE3-LLaMA3.1-Instruct-8B-converted/
# blob/main/config.json (the speculators conversion of yuhuili/EAGLE3-LLaMA3.1-Instruct-8B), its layer fields.
SPECULATORS_CONFIG = {
    "architectures": ["Eagle3Speculator"], "auto_map": {"": "eagle3.Eagle3SpeculatorConfig"},
    "draft_vocab_size": 32000, "norm_before_residual": False,
    "speculators_config": {"algorithm": "eagle3", "default_proposal_method": "greedy",
                           "verifier": {"architectures": ["LlamaForCausalLM"],
                                        "name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}},
    "speculators_model_type": "eagle3", "target_hidden_size": None, "torch_dtype": "float32",
    "transformer_layer_config": {
        "attention_bias": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
        "intermediate_size": 14336, "max_position_embeddings": 2048, "mlp_bias": False, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 1, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
        "vocab_size": 128256},
}
# SpecForge's EAGLE-3 layout for gpt-oss-120b (sgl-project/SpecForge configs/gpt-oss-120B-eagle3.json).
SPECFORGE_GPT_OSS_CONFIG = {
    "architectures": ["LlamaForCausalLMEagle3"], "eagle_config": {"eagle_aux_hidden_state_layer_ids": [1, 17, 33]},
    "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "intermediate_size": 17280,
    "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 64, "num_key_value_heads": 8,
    "num_hidden_layers": 1, "rms_norm_eps": 1e-05, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 201088, "draft_vocab_size": 32000,
}
# gpt-oss EAGLE-3 by hand: d 2880, 64 heads / 8 KV heads of 64, MLP 17280, draft vocab 32000.
G = 2880
GPT_OSS_HEAD = (3 * G * G  # fc over the low/mid/high features: 24,883,200
                + 2 * G * 4096 + 2 * (2 * G * 512) + 4096 * G  # q/k/v read 2d, o_proj: 41,287,680
                + 3 * G * 17280  # 149,299,200
                + 4 * G  # hidden_norm, input/post-attention layernorms, final norm
                + G * 32000)  # lm_head: 92,160,000
GPT_OSS_MAPS = 8 * 32000 + 201088  # int64 d2t, bool t2d


def _head_folder(tmp_path: Path, cfg: dict) -> Path:
    folder = tmp_path / "head"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_speculators_head_folder_resolves_to_the_catalogued_layout(tmp_path):
    folder = _head_folder(tmp_path, SPECULATORS_CONFIG)
    target = find_model("meta-llama/Llama-3.1-8B-Instruct")
    proposer = resolve_proposer("eagle3", target, str(folder), "vLLM", SERVES)
    assert proposer.layout == head_catalog().index["yuhuili/eagle3-llama3.1-instruct-8b"].layout
    assert (proposer.method, proposer.name, proposer.weight_format) == ("eagle3", str(folder), "fp32")
    assert eagle3_params(proposer.layout).total == 424_689_664  # tests/test_proposers.py's hand count


def test_specforge_head_folder_counts_by_hand(tmp_path):
    folder = _head_folder(tmp_path, SPECFORGE_GPT_OSS_CONFIG)
    proposer = resolve_proposer("eagle3", find_model("openai/gpt-oss-120b"), str(folder / "config.json"),
                                "SGLang", SERVES)
    p = eagle3_params(proposer.layout)
    assert p.total == GPT_OSS_HEAD == 307_641_600 and p.vocab_map_bytes == GPT_OSS_MAPS
    assert proposer.layout.uses_aux_hidden_states and proposer.weight_format == "bf16"
    mem = proposer.memory(find_model("openai/gpt-oss-120b").spec, BF16, KV16)
    assert mem.weight_bytes == GPT_OSS_HEAD * 2 + GPT_OSS_MAPS  # 615,740,288 bytes, no embedding copy
    assert mem.kv_bytes_per_token == 2 * 8 * 64 * 2


def test_head_folder_of_yuhuili_layout_and_bad_folders(tmp_path):
    # yuhuili's EAGLE-3 files write architectures LlamaForCausalLM (SGLang's copies rename it to
    # LlamaForCausalLMEagle3): --method eagle3 reads them as EAGLE-3 heads all the same.
    plain = _head_folder(tmp_path, {**SPECFORGE_GPT_OSS_CONFIG, "architectures": ["LlamaForCausalLM"]})
    proposer = resolve_proposer("eagle3", find_model("openai/gpt-oss-120b"), str(plain), "vLLM", SERVES)
    assert eagle3_params(proposer.layout).total == GPT_OSS_HEAD
    (plain / "config.json").write_text(json.dumps({**SPECFORGE_GPT_OSS_CONFIG, "hidden_size": "2880"}))
    with pytest.raises(ConfigImportError) as err:
        resolve_proposer("eagle3", find_model("openai/gpt-oss-120b"), str(plain), "vLLM", SERVES)
    assert "field hidden_size: expected a whole number" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigImportError, match="no config.json found"):
        resolve_proposer("eagle3", find_model("openai/gpt-oss-120b"), str(tmp_path / "empty"), "vLLM", SERVES)


def test_mtp_from_a_target_folder_and_from_the_catalogue(tmp_path):
    folder = tmp_path / "glm-air"
    folder.mkdir()
    shutil.copy(GLM_AIR_CONFIG, folder / "config.json")
    local = find_model(str(folder))
    proposer = resolve_proposer("mtp", local, None, "vLLM", SERVES)
    assert (proposer.method, proposer.mtp_layers, proposer.name) == ("mtp", 1, local.spec.id)
    assert proposer.memory(local.spec, BF16, KV16).weight_bytes == GLM_MTP * 2
    catalogued = resolve_proposer("mtp", find_model("glm-4.5-air"), None, "vLLM", SERVES)
    assert catalogued.mtp_layers == 1 and catalogued.entry is not None
    assert catalogued.entry.id == "zai-org/GLM-4.5-Air"

    cfg = json.loads(GLM_AIR_CONFIG.read_text())
    del cfg["num_nextn_predict_layers"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecplanError) as err:
        resolve_proposer("mtp", find_model(str(folder)), None, "vLLM", SERVES)
    assert "ships no MTP layers" in str(err.value) and "--method eagle3" not in str(err.value)
    assert "\n" not in str(err.value)


def test_sources_view_of_a_head_and_of_an_mtp_entry():
    head = head_sources("Tengyunw/qwen3_8b_eagle3")
    figures = {f["figure"]: f["value"] for f in head["figures"]}
    assert figures["intermediate_size"] == 12288 and figures["draft_vocab_size"] == 32000
    assert head["published_bytes"] is None and head["config_json_items"] == []  # its config.json was not read
    mtp = head_sources("zai-org/glm-4.5-air")
    assert mtp["figures"] == [{"figure": "num_nextn_predict_layers", "value": 1}]
    assert mtp["config_json_items"] == [1]


def _run(runner, *args):
    return runner.invoke(main, ["heads", *args])


def test_heads_cli_json_lists_every_entry(runner):
    result = _run(runner, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [h.id for h in head_catalog()]
    by_id = {r["id"]: r for r in rows}
    assert by_id["yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"]["checkpoint_bytes"] == 424_689_664 * 2 + 8 * 32000 + 128256
    assert by_id["zai-org/GLM-4.5-Air"]["parameters"] == GLM_MTP


def test_heads_cli_filters_table_and_sources(runner):
    result = _run(runner, "--method", "mtp", "--target", "glm-4.5-air", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)] == ["zai-org/GLM-4.5-Air"]
    table = _run(runner, "--method", "eagle")
    eagle = len({h.id for h in head_catalog().index.values() if h.method == "eagle"})
    assert table.exit_code == 0 and table.stdout.startswith(f"{eagle} heads and MTP checkpoints\n") and eagle >= 4
    sources = _run(runner, "--sources", "leptonai/EAGLE-Llama-3.1-405B-Instruct")
    assert sources.exit_code == 0, sources.output
    assert "5,825,921,024" in sources.stdout and "11.70 GB (-0.4%)" in sources.stdout
    assert "\nsources:\n  1. https://huggingface.co/leptonai/EAGLE-Llama-3.1-405B-Instruct" in sources.stdout


@pytest.mark.parametrize("args", [
    ["--sources", "yuhuili/EAGLE3-LLaMA3.1-Instruct-9B"],
    ["--method", "medusa"],
    ["--target", "no-such-model-xyz"],
    ["--sources", "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "--method", "eagle3"],
])
def test_heads_cli_bad_input_is_one_line_exit_2(runner, args):
    result = _run(runner, *args, "--format", "json")
    assert result.exit_code == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    if args[0] == "--sources" and len(args) == 2:
        assert "unknown head 'yuhuili/EAGLE3-LLaMA3.1-Instruct-9B'; nearest: yuhuili/EAGLE3-LLaMA3.1-Instruct-8B" \
            in result.stderr


# --- EAGLE-3 heads of the 2025 targets, counted by hand from their SpecForge recipe configs ---
def _eagle3_by_hand(d, heads, kv_heads, head_dim, mlp, draft_vocab, d_target=None):
    """fc over 3 target features, q/k/v reading [embedding; feature] (2d), o_proj, gated MLP,
    4 RMSNorms (hidden_norm, input/post-attention, final), reduced lm_head: parameters."""
    q, kv = heads * head_dim, kv_heads * head_dim
    return (3 * (d_target or d) * d + 2 * d * q + 2 * (2 * d * kv) + q * d + 3 * d * mlp + 4 * d
            + d * draft_vocab)


# configs/llama3-70B-ealge3.json: 8192, 64 / 8 heads of 128, MLP 28672, draft vocab 32000
LLAMA70_HEAD = _eagle3_by_hand(8192, 64, 8, 128, 28672, 32000)
LLAMA70_MAPS = 8 * 32000 + 128256  # int64 d2t, bool t2d, bytes
# configs/llama4-scout-17B-16E-eagle3.json: 5120, 40 / 8 heads of 128, MLP 32768
SCOUT_HEAD = _eagle3_by_hand(5120, 40, 8, 128, 32768, 32000)
# configs/qwen3-235B-A22B-eagle3.json: 4096, 64 / 4 heads of 128 (query width 8192 > d), MLP 24576
QWEN235_HEAD = _eagle3_by_hand(4096, 64, 4, 128, 24576, 32000)
GPT_OSS_EMBEDDING = 201088 * 2880


@pytest.mark.parametrize(("head_id", "target", "count"), [
    ("yuhuili/EAGLE3-LLaMA3.3-Instruct-70B", "meta-llama/Llama-3.3-70B-Instruct", 1_403_027_456),
    ("lmsys/SGLang-EAGLE3-Llama-3.3-70B-Instruct-SpecForge", "meta-llama/Llama-3.3-70B-Instruct", 1_403_027_456),
    ("lmsys/SGLang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-SpecForge", "meta-llama/Llama-4-Scout-17B-16E-Instruct",
     845_434_880),
    ("lmsys/Qwen3-235B-A22B-EAGLE3", "Qwen/Qwen3-235B-A22B-Instruct-2507", 592_461_824),
    ("zhuyksir/EAGLE3-gpt-oss-20b-bf16", "openai/gpt-oss-20b", GPT_OSS_HEAD),
])
def test_new_eagle3_heads_by_hand(head_id, target, count):
    entry = head_catalog().index[head_id.lower()]
    assert entry.targets[0] == target
    assert eagle3_params(entry.layout).total == count
    # an EAGLE-3 head is its target's width: the fc reads the target's hidden states
    assert entry.layout.target_hidden_size == find_model(target).spec.hidden_size


def test_hand_counts_against_published_figures():
    assert (LLAMA70_HEAD, SCOUT_HEAD, QWEN235_HEAD) == (1_403_027_456, 845_434_880, 592_461_824)
    # A third-party read of the Scout head's safetensors headers: 846M; SpecBundle: a "0.6B" 235B head.
    assert round(SCOUT_HEAD / 1e6) in (845, 846) and round(QWEN235_HEAD / 1e8) == 6
    # The Hub shows lmsys/EAGLE3-gpt-oss-120b-bf16 as "0.9B params" (I64, BF16, BOOL tensors): only a
    # stored 201088 x 2880 embedding beside the 0.31B head reaches it, so the entry stores one.
    maps = 32000 + 201088
    assert round((GPT_OSS_HEAD + maps) / 1e9, 1) == 0.3
    assert round((GPT_OSS_HEAD + GPT_OSS_EMBEDDING + maps) / 1e9, 1) == 0.9
    row = head_row(head_catalog().index["lmsys/eagle3-gpt-oss-120b-bf16"])
    assert row["parameters"] == GPT_OSS_HEAD + GPT_OSS_EMBEDDING
    assert row["checkpoint_bytes"] == (GPT_OSS_HEAD + GPT_OSS_EMBEDDING) * 2 + GPT_OSS_MAPS
    # resident: the engines share the target's embedding, so the copy is not held
    assert row["resident_gib"] * 2**30 == pytest.approx(GPT_OSS_HEAD * 2 + GPT_OSS_MAPS)
    # SpecForge v0.1.0 saved the draft's embedding (202048 x 5120) with the July 2025 Scout head; the
    # SpecBundle head (saved after the fix that drops it) stores none; both hold the same resident
    v1, bundle = (head_row(head_catalog().index[i.lower()]) for i in (
        "lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1", "lmsys/SGLang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-SpecForge"))
    assert (v1["parameters"], bundle["parameters"]) == (SCOUT_HEAD + 202048 * 5120, SCOUT_HEAD)
    assert v1["resident_gib"] == bundle["resident_gib"] == pytest.approx((SCOUT_HEAD * 2 + 8 * 32000 + 202048) / 2**30)


def test_heads_cli_lists_the_new_targets(runner):
    for target, ids in [
        ("llama-3.3-70b-instruct", ["yuhuili/EAGLE3-LLaMA3.3-Instruct-70B",
                                    "lmsys/SGLang-EAGLE3-Llama-3.3-70B-Instruct-SpecForge"]),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", ["lmsys/SGLang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-SpecForge",
                                                       "lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1"]),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507", ["lmsys/Qwen3-235B-A22B-EAGLE3",
                                                "lmsys/SGLang-EAGLE3-Qwen3-235B-A22B-Instruct-2507-SpecForge-Meituan"]),
        ("openai/gpt-oss-20b", ["zhuyksir/EAGLE3-gpt-oss-20b-bf16"]),
    ]:
        result = _run(runner, "--target", target, "--format", "json")
        assert result.exit_code == 0, result.output
        assert [r["id"] for r in json.loads(result.stdout)] == ids
    # an Instruct head does not serve the base release; the SpecBundle 235B head serves 2507 only, while
    # lmsys/Qwen3-235B-A22B-EAGLE3 is listed for both releases (its sources disagree)
    assert heads_for("meta-llama/Llama-4-Scout-17B-16E", "eagle3") == []
    assert [h.id for h in heads_for("Qwen/Qwen3-235B-A22B", "eagle3")] == ["lmsys/Qwen3-235B-A22B-EAGLE3"]


def _estimate(runner, *args):
    result = runner.invoke(main, ["estimate", "--method", "eagle3", "--gpu", "h100-sxm", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_estimate_prices_the_catalogued_70b_head(runner):
    row = _estimate(runner, "--target", "meta-llama/Llama-3.3-70B-Instruct", "--gpus", "4")
    assert (row["method"], row["head"]) == ("eagle3", "yuhuili/EAGLE3-LLaMA3.3-Instruct-70B")  # first catalogued
    # the head's weights split over 4 GPUs: (2 bytes x the hand count + d2t/t2d) / 4
    assert row["fit"]["per_gpu_gib"]["draft_weights"] == pytest.approx(
        (LLAMA70_HEAD * 2 + LLAMA70_MAPS) / 4 / 2**30, abs=1e-3)
    assert row["t_draft_ms"] > 0 and row["speedup"] > 1
    # SGLang's copy resolves to the same entry by its alias
    alias = _estimate(runner, "--target", "meta-llama/Llama-3.3-70B-Instruct", "--gpus", "4",
                      "--head", "lmsys/sglang-EAGLE3-LLaMA3.3-Instruct-70B")
    assert alias["fit"]["per_gpu_gib"]["draft_weights"] == row["fit"]["per_gpu_gib"]["draft_weights"]


def test_estimate_holds_no_embedding_copy_for_the_gpt_oss_head(runner):
    row = _estimate(runner, "--target", "openai/gpt-oss-120b")
    assert row["head"] == "lmsys/EAGLE3-gpt-oss-120b-bf16"
    assert row["fit"]["per_gpu_gib"]["draft_weights"] == pytest.approx((GPT_OSS_HEAD * 2 + GPT_OSS_MAPS) / 2**30,
                                                                        abs=1e-3)


# --- MiMo-7B's MTP layer by hand (d 4096, 32 / 8 heads of 128 with q/k/v bias, dense MLP 11008) ---
MD, MQ, MKV = 4096, 32 * 128, 8 * 128
MIMO_INPUT_PROJ = 2 * MD * MD  # input_proj over [token_layernorm(emb); hidden_layernorm(h)], no bias
MIMO_ATTN = (MD * MQ + MQ) + 2 * (MD * MKV + MKV) + MQ * MD
MIMO_MLP = 3 * MD * 11008
MIMO_NORMS = 5 * MD  # input/post-attention/final + token and hidden layernorms
MIMO_MTP = MIMO_INPUT_PROJ + MIMO_ATTN + MIMO_MLP + MIMO_NORMS


def test_mimo_mtp_layer_by_hand_and_priced_per_engine(runner):
    p = mtp_module_params(find_model("XiaomiMiMo/MiMo-7B-RL").spec)
    assert (p.fusion, p.attention, p.mlp, p.norms) == (MIMO_INPUT_PROJ, MIMO_ATTN, MIMO_MLP, MIMO_NORMS)
    assert p.total == MIMO_MTP == 210_790_400 and p.mlp_active == MIMO_MLP  # dense: all of it is read
    assert [h.id for h in heads_for("mimo-7b-rl", "mtp")] == ["XiaomiMiMo/MiMo-7B-RL"]
    assert heads_for("mimo-7b-rl", "eagle3") == []

    def draft_gib(engine):
        row = _estimate_mtp(runner, engine)
        assert (row["method"], row["head"]) == ("mtp", "XiaomiMiMo/MiMo-7B-RL")
        return row["fit"]["per_gpu_gib"]["draft_weights"]

    # SGLang hands the module the target's lm_head; vLLM (methods.yaml own_lm_head_engines) loads its own
    assert draft_gib("sglang") == pytest.approx(MIMO_MTP * 2 / 2**30, abs=1e-3)
    assert draft_gib("vllm") == pytest.approx((MIMO_MTP + 151680 * MD) * 2 / 2**30, abs=1e-3)


def _estimate_mtp(runner, engine):
    result = runner.invoke(main, ["estimate", "--target", "XiaomiMiMo/MiMo-7B-RL", "--method", "mtp", "--gpu",
                                  "h100-sxm", "--engine", engine, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_mimo_folder_imports_with_its_mtp_layer(tmp_path):
    # NVIDIA-NeMo/Megatron-Bridge's MiMo fixture (tests/unit_tests/models/mimo/test_mimo_bridge.py)
    cfg = {"architectures": ["MiMoForCausalLM"], "attention_bias": True, "hidden_size": 4096,
           "intermediate_size": 11008, "max_position_embeddings": 32768, "model_type": "mimo",
           "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
           "num_nextn_predict_layers": 1, "rms_norm_eps": 1e-05, "rope_theta": 640000.0,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 151680}
    folder = _head_folder(tmp_path, cfg)
    local = find_model(str(folder))
    proposer = resolve_proposer("mtp", local, None, "SGLang", SERVES)
    assert proposer.mtp_layers == 1
    assert proposer.memory(local.spec, BF16, KV16).weight_bytes == MIMO_MTP * 2
    assert mtp_module_params(local.spec) == mtp_module_params(find_model("mimo-7b-rl").spec)


def test_glm45_mtp_layer_by_hand():
    # GLM-4.5 (NVIDIA Megatron-Bridge's GLM 4.5 page): d 5120, 96 / 8 heads of 128 with q/k/v bias and
    # per-head q/k norms, 160 experts of 1536 top-8 + one shared expert of 1536, sigmoid router with bias
    d, q, kv, e = 5120, 96 * 128, 8 * 128, 1536
    attn = (d * q + q) + 2 * (d * kv + kv) + q * d + 2 * 128
    expert = 3 * d * e
    mlp = 160 * expert + expert + (d * 160 + 160)
    p = mtp_module_params(find_model("glm-4.5").spec)
    assert (p.fusion, p.attention, p.mlp, p.norms) == (2 * d * d, attn, mlp, 5 * d)
    assert p.total == 3_988_069_792
    assert p.mlp_active == (d * 160 + 160) + 9 * expert  # 8 routed + the shared expert
    assert [h.id for h in heads_for("zai-org/GLM-4.5")] == ["zai-org/GLM-4.5"]
