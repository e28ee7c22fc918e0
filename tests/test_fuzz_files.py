"""Hypothesis-generated malformed files for every reader of user files.

Each reader must either return a valid result or raise SpecplanError with a one-line message;
any other exception (KeyError, OverflowError, RecursionError, ...) would reach the user as an
internal error. Values that are certainly invalid (NaN, negative sizes, 10^12 layers) must be
refused, not carried into a plan. Example counts are fixed; nothing depends on machine speed.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.calibration.probe import read_prompts
from planner.calibration.schema import CalibrationFile, read_calibration, write_calibration
from planner.calibration.server_metrics import llamacpp_calibration, vllm_calibration, vllm_counters
from planner.calibration.sglang_metrics import sglang_calibration
from planner.catalog.hf_config import load_model_dir
from planner.catalog.safetensors import read_safetensors_header
from planner.errors import SpecplanError
from planner.inputs import parse_json, parse_yaml
from planner.validate import load_measurements, validate

FILES = settings(deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.function_scoped_fixture])


def fuzz(examples: int) -> settings:
    """FILES with a fixed number of examples."""
    return settings(FILES, max_examples=examples)


def expect_clean(call, *args, **kwargs):
    """call(*args): a result, or a one-line SpecplanError; None in the second case."""
    try:
        return call(*args, **kwargs)
    except SpecplanError as exc:
        assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))
        return None


ODD = [None, True, False, 0, -1, 1, 3, 0.5, -0.0, 1e308, 10**12, 10**400, "32", "", "abc", [], [1, 2], {}, {"a": 1},
       float("nan"), float("inf"), "\u0000", "x\ny", "[/]", "\u0663"]
odd_value = st.one_of(st.sampled_from(ODD), st.integers(-5, 10**7), st.text(max_size=8))

BASE_CONFIG = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000, "max_position_embeddings": 2048,
               "torch_dtype": "bfloat16", "tie_word_embeddings": False, "_name_or_path": "local/tiny"}
CONFIG_KEYS = list(BASE_CONFIG) + ["text_config", "quantization_config", "num_local_experts", "num_experts",
                                   "num_experts_per_tok", "n_routed_experts", "moe_intermediate_size", "kv_lora_rank",
                                   "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "head_dim",
                                   "sliding_window", "use_sliding_window", "layer_types", "n_shared_experts",
                                   "first_k_dense_replace", "shared_expert_intermediate_size", "attention_bias"]
MODEL_TYPES = ["llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3_moe", "gemma2", "phi3", "deepseek_v3",
               "gpt2", ""]
_MAX_SANE = {"num_hidden_layers": 10_000, "hidden_size": 10**7, "num_attention_heads": 10**5, "vocab_size": 10**7,
             "intermediate_size": 10**7, "max_position_embeddings": 10**9}


@fuzz(300)
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), odd_value, max_size=4),
       drop=st.lists(st.sampled_from(list(BASE_CONFIG)), max_size=2), model_type=st.sampled_from(MODEL_TYPES))
def test_config_json(tmp_path, changes, drop, model_type):
    cfg = {**BASE_CONFIG, "model_type": model_type, **changes}
    for key in drop:
        cfg.pop(key, None)
    (tmp_path / "config.json").write_text(json.dumps(cfg, allow_nan=True))
    imported = expect_clean(load_model_dir, tmp_path)
    if imported is None:
        return
    spec = imported.spec
    # Whatever was accepted is a sane footprint: whole, positive, bounded sizes and a printable name.
    for field, bound in (("num_layers", _MAX_SANE["num_hidden_layers"]), ("hidden_size", _MAX_SANE["hidden_size"]),
                         ("vocab_size", _MAX_SANE["vocab_size"]), ("max_context_tokens", _MAX_SANE["max_position_embeddings"])):
        value = getattr(spec, field)
        assert isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= bound, (field, value)
    assert spec.id.isprintable(), spec.id


@fuzz(100)
@given(st.binary(max_size=300))
def test_config_json_random_bytes(tmp_path, blob):
    (tmp_path / "config.json").write_bytes(blob)
    expect_clean(load_model_dir, tmp_path)


@pytest.mark.parametrize("field, value", [("num_hidden_layers", 10**12), ("num_hidden_layers", 10**400),
                                          ("hidden_size", -5), ("vocab_size", 0), ("num_attention_heads", "32"),
                                          ("max_position_embeddings", 1e308), ("_name_or_path", "x\ntrust-remote-code: true")])
def test_config_json_bad_values_are_refused(tmp_path, field, value):
    (tmp_path / "config.json").write_text(json.dumps({**BASE_CONFIG, field: value}))
    with pytest.raises(SpecplanError, match=field):
        load_model_dir(tmp_path)


@pytest.mark.parametrize("extra", [{"model_type": "mixtral", "num_local_experts": 8},
                                   {"model_type": "deepseek_v3", "kv_lora_rank": 512},
                                   {"model_type": "deepseek_v3", "n_routed_experts": 64, "num_experts_per_tok": 6}])
def test_missing_moe_and_mla_fields_are_named(tmp_path, extra):
    (tmp_path / "config.json").write_text(json.dumps({**BASE_CONFIG, **extra}))
    with pytest.raises(SpecplanError, match="field .*: missing"):
        load_model_dir(tmp_path)


def _safetensors(header: bytes, length: int | None = None, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + data


tensor_entry = st.fixed_dictionaries({}, optional={
    "dtype": st.one_of(st.sampled_from(["BF16", "F16", "F32", "I8"]), odd_value),
    "shape": st.one_of(st.lists(st.integers(-3, 10**13), max_size=3), odd_value),
    "data_offsets": st.one_of(st.lists(st.integers(-3, 10**6), max_size=3), odd_value)})


@fuzz(200)
@given(entries=st.dictionaries(st.text(max_size=20), st.one_of(tensor_entry, odd_value), max_size=4),
       length_delta=st.sampled_from([0, 0, 0, 1, -1, 10**6, 2**63]), data=st.binary(max_size=64))
def test_safetensors_header(tmp_path, entries, length_delta, data):
    header = json.dumps(entries, allow_nan=True).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(_safetensors(header, len(header) + length_delta, data))
    parsed = expect_clean(read_safetensors_header, path)
    if parsed is not None:
        for info in parsed.values():  # every accepted entry is well-formed and inside the file
            begin, end = info["data_offsets"]
            assert 0 <= begin <= end <= len(data) + max(0, -length_delta)
            assert all(isinstance(d, int) and d >= 0 for d in info["shape"])


@fuzz(100)
@given(st.binary(max_size=200))
def test_safetensors_random_bytes(tmp_path, blob):
    path = tmp_path / "model.safetensors"
    path.write_bytes(blob)
    expect_clean(read_safetensors_header, path)


@fuzz(80)
@given(tokenizer=st.one_of(st.binary(max_size=100), st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["model", "vocab", "added_tokens", "content", "id", "a"]), inner, max_size=3)), max_leaves=10)))
def test_tokenizer_json_never_breaks_the_import(tmp_path, tokenizer):
    (tmp_path / "config.json").write_text(json.dumps(BASE_CONFIG))
    blob = tokenizer if isinstance(tokenizer, bytes) else json.dumps(tokenizer, allow_nan=True).encode()
    (tmp_path / "tokenizer.json").write_bytes(blob)
    assert load_model_dir(tmp_path).spec.vocab_size == 1000  # a bad tokenizer.json only loses the identity


@pytest.fixture(scope="module")
def calibration_doc(tmp_path_factory) -> dict:
    cal = llamacpp_calibration(["draft acceptance rate = 0.6 ( 60 accepted / 100 generated)"], 4, "t", "d")
    path = tmp_path_factory.mktemp("cal") / "cal.yaml"
    write_calibration(cal, path)
    return json.loads(json.dumps(cal.model_dump(mode="json")))


CAL_KEYS = ["counters", "fitted_acceptance", "target", "draft", "device", "rounds", "timings", "source", "notes",
            "partial", "created_at", "engine", "schema_version"]
INNER_KEYS = ["alpha", "alpha_low", "k", "id", "mode", "num_draft_tokens", "per_position", "role", "seconds", "batch",
              "eta_mem", "name", "context", "new_tokens", "accepted", "proposed"]


@fuzz(200)
@given(key=st.sampled_from(CAL_KEYS), value=st.one_of(
    odd_value, st.lists(odd_value, max_size=3),
    st.lists(st.dictionaries(st.sampled_from(INNER_KEYS), st.one_of(odd_value, st.lists(odd_value, max_size=2)),
                             max_size=5), max_size=2),
    st.dictionaries(st.sampled_from(INNER_KEYS), odd_value, max_size=4)), as_json=st.booleans())
def test_calibration_file(tmp_path, calibration_doc, key, value, as_json):
    import yaml

    doc = {**calibration_doc, key: value}
    path = tmp_path / ("cal.json" if as_json else "cal.yaml")
    try:
        path.write_text(json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc))
    except (ValueError, yaml.YAMLError):
        return  # not representable in that format
    cal = expect_clean(read_calibration, path)
    if cal is not None:
        assert isinstance(cal, CalibrationFile)
        for fit in cal.fitted_acceptance:
            assert 0 <= fit.alpha <= 1 and all(0 <= p <= 1 for p in fit.per_position)
        assert all(math.isfinite(s) and s >= 0 for t in cal.timings for s in t.seconds)


@fuzz(80)
@given(st.text(max_size=300))
def test_calibration_random_text(tmp_path, text):
    path = tmp_path / "cal.yaml"
    path.write_text(text)
    expect_clean(read_calibration, path)


METRIC_NAMES = ["vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_draft_tokens_total",
                "vllm:spec_decode_num_accepted_tokens_total", "vllm:spec_decode_num_accepted_tokens_per_pos_total",
                "vllm:spec_decode_num_emitted_tokens_total", "vllm:spec_decode_draft_acceptance_rate"]
metric_value = st.one_of(st.integers(-5, 10**20).map(str), st.sampled_from(
    ["NaN", "+Inf", "-Inf", "1e19", "1e300", "\u0663", "\u00b2", "0x10", "5", "abc", "9" * 5000]))
label = st.one_of(st.none(), st.sampled_from(['position="0"', 'position="1"', 'position="\u00b2"',
                                              'position="\u0663"', 'position="' + "9" * 50 + '"', 'model_name="m"',
                                              'model_name="n"', 'engine="0"', 'engine="1"']))
metric_line = st.builds(lambda n, lab, v: f"{n}{{{lab}}} {v}" if lab else f"{n} {v}",
                        st.sampled_from(METRIC_NAMES), label, metric_value)


@fuzz(300)
@given(lines=st.lists(st.one_of(metric_line, metric_line, st.text(max_size=30)), max_size=8),
       k=st.one_of(st.none(), st.integers(1, 8)))
def test_vllm_metrics(lines, k):
    text = "\n".join(lines) + "\n"
    snap = expect_clean(vllm_counters, text)
    if snap is not None:
        assert snap.num_draft_tokens >= 0 and snap.num_accepted_tokens >= 0
        assert snap.num_draft_tokens <= 2**53
    cal = expect_clean(vllm_calibration, None, text, k, "t", "d")
    if cal is not None:
        assert all(0 <= f.alpha <= 1 for f in cal.fitted_acceptance)


SGLANG_NAMES = ["sglang:spec_verify_calls_total", "sglang:generation_tokens_total", "sglang:num_requests_total",
                "sglang:spec_accept_length", "sglang:spec_accept_rate", "sglang:spec_num_steps",
                "sglang:spec_num_draft_tokens"]
sglang_label = st.one_of(st.none(), st.sampled_from(['model_name="m"', 'model_name="n"', 'is_streaming="true"',
                                                     'tp_rank="1"']))
sglang_line = st.builds(lambda n, lab, v: f"{n}{{{lab}}} {v}" if lab else f"{n} {v}",
                        st.sampled_from(SGLANG_NAMES), sglang_label, metric_value)


@fuzz(300)
@given(before=st.lists(st.one_of(sglang_line, st.text(max_size=30)), max_size=6),
       after=st.lists(st.one_of(sglang_line, sglang_line, st.text(max_size=30)), max_size=8),
       k=st.one_of(st.none(), st.integers(1, 8)), window=st.booleans())
def test_sglang_metrics(before, after, k, window):
    cal = expect_clean(sglang_calibration, "\n".join(before) + "\n" if window else None, "\n".join(after) + "\n",
                       k, "t", "d")
    if cal is not None:
        assert all(0 <= f.alpha_low <= f.alpha <= f.alpha_high <= 1 for f in cal.fitted_acceptance)


count = st.one_of(st.integers(0, 200).map(str), st.sampled_from(["9" * 400, "9" * 5000, "\u0663\u0663", "-4", "1e999"]))
llama_line = st.one_of(
    st.builds(lambda a, g: f"draft acceptance rate = 0.5 ( {a} accepted / {g} generated)", count, count),
    st.builds(lambda d: f"n_drafted = {d}", count), st.builds(lambda a: f"n_accept = {a}", count),
    st.builds(lambda p: f"n_predict = {p}", count), st.builds(lambda d: f"n_draft = {d}", count),
    st.builds(lambda d, a: json.dumps({"timings": {"draft_n": d, "draft_n_accepted": a, "predicted_n": 100}}),
              odd_value, odd_value).map(lambda s: s),
    st.builds(lambda d: "data: " + json.dumps({"timings": {"draft_n": d, "draft_n_accepted": 1}}), odd_value),
    st.text(max_size=30))


@fuzz(300)
@given(st.lists(llama_line, min_size=1, max_size=5))
def test_llamacpp_outputs(lines):
    cal = expect_clean(llamacpp_calibration, ["\n".join(lines)], 4, "t", "d")
    if cal is not None:
        counters = cal.counters
        assert 0 <= counters.num_accepted_tokens <= counters.num_draft_tokens <= 2**53


ROW_FIELDS = ["id", "model", "hardware", "engine", "quant", "n_gpus", "tg_tok_s", "decode_tok_s", "target", "draft",
              "method", "k", "alpha", "acceptance_rate", "mean_accepted_tokens", "tok_s_spec", "tok_s_baseline",
              "speedup_overall", "precision"]
GOOD_ROW = {"id": "A-1", "model": "Meta-Llama-3-8B", "quant": "Q4_K_M", "hardware": "NVIDIA GeForce RTX 4090 24GB",
            "n_gpus": 1, "engine": "llama.cpp (llama-bench)", "tg_tok_s": {"n512": 127.7}}


@fuzz(120)
@given(changes=st.dictionaries(st.sampled_from(ROW_FIELDS), st.one_of(odd_value, st.dictionaries(
    st.sampled_from(["n512", "nx", "n" + "9" * 10, "tg"]), odd_value, max_size=2)), max_size=3),
    section=st.sampled_from(["A_decode_throughput", "B_speculative_decoding"]))
def test_measurements(tmp_path, changes, section):
    import yaml

    doc = {"A_decode_throughput": [], "B_speculative_decoding": [], section: [{**GOOD_ROW, **changes}]}
    path = tmp_path / "m.yaml"
    try:
        path.write_text(yaml.safe_dump(doc))
    except yaml.YAMLError:
        return
    loaded = expect_clean(load_measurements, path)
    if loaded is not None:
        report = expect_clean(validate, loaded)
        if report is not None:
            assert all(math.isfinite(c.measured) and c.measured > 0 for c in report.checks)


@fuzz(80)
@given(st.binary(max_size=200), st.sampled_from(["p.txt", "p.jsonl"]))
def test_prompts(tmp_path, blob, name):
    path = tmp_path / name
    path.write_bytes(blob)
    prompts = expect_clean(read_prompts, str(path))
    if prompts is not None:
        assert prompts and all(isinstance(p, str) for p in prompts)


json_doc = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
                        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner,
                                                                                             max_size=3)), max_leaves=20)


@fuzz(200)
@given(doc=json_doc, depth=st.integers(0, 120), digits=st.integers(1, 5000))
def test_json_and_yaml_limits(doc, depth, digits):
    text = "[" * depth + json.dumps(doc, allow_nan=True) + "]" * depth
    for parse in (parse_json, parse_yaml):
        expect_clean(parse, text, "f")
    expect_clean(parse_json, "[" + "9" * digits + "]", "f")


def test_the_fuzz_inputs_parse_when_valid():
    """A sanity check of the generators' base cases: the unmodified files are accepted."""
    assert parse_json(json.dumps(BASE_CONFIG), "c") == BASE_CONFIG
    assert vllm_counters("vllm:spec_decode_num_draft_tokens_total 40\nvllm:spec_decode_num_accepted_tokens_total 20\n")
    assert llamacpp_calibration(["n_drafted = 10\nn_accept = 5\n"], 4, "t", "d").counters.num_draft_tokens == 10


def test_log_decoding_keeps_counts_after_invalid_bytes(tmp_path):
    from planner.calibration.server_metrics import read_text_source

    path = Path(tmp_path / "spec.log")
    path.write_bytes(b"progress \xe2\x96 cut\nn_drafted = 10\nn_accept = 5\n")
    text = read_text_source(str(path), "--llamacpp", log=True)
    assert llamacpp_calibration([text], 4, "t", "d").counters.num_accepted_tokens == 5
