"""Method exports: each server's keys per method and release line, and the refusals.

Expected keys are written out by hand from the servers' sources named in
planner/exports/server_args/methods.yaml (vLLM SpeculativeConfig fields, SGLang's
--speculative-* flags, TensorRT-LLM's decoding configs, llama.cpp's common/arg.cpp).
"""

from __future__ import annotations

import pytest

from planner.errors import SpecplanError
from planner.exports.method_args import lines_with, method_args, method_data, method_line
from planner.exports.method_settings import METHODS, method_settings, tree_candidates
from planner.exports.versions import server_args

HEAD = "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B"
EAGLE1 = "yuhuili/EAGLE-LLaMA3-Instruct-8B"
DRAFT = "meta-llama/Llama-3.2-1B-Instruct"


def _keys(server: str, version: str | None, **settings):
    return method_args(server, method_settings(**settings), method_line(server, version)).keys


def _refusal(server: str, version: str | None, **settings) -> str:
    with pytest.raises(SpecplanError) as err:
        _keys(server, version, **settings)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- vLLM --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.33.0", "0.25.0", "0.15.0"])
def test_vllm_v1_lines(version: str) -> None:
    assert _keys("vllm", version, method="eagle3", k=3, head=HEAD) == {
        "method": "eagle3", "model": HEAD, "num_speculative_tokens": 3}
    assert _keys("vllm", version, method="eagle", k=5, head=EAGLE1) == {
        "method": "eagle", "model": EAGLE1, "num_speculative_tokens": 5}
    assert _keys("vllm", version, method="mtp", k=1) == {"method": "mtp", "num_speculative_tokens": 1}
    assert _keys("vllm", version, method="ngram", k=4, prompt_lookup_min=2, prompt_lookup_max=5) == {
        "method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 5, "prompt_lookup_min": 2}
    assert _keys("vllm", version, method="suffix", suffix_max_tree_depth=32, suffix_min_token_prob=0.2) == {
        "method": "suffix", "suffix_decoding_max_tree_depth": 32, "suffix_decoding_min_token_prob": 0.2,
        # the two not given: vLLM's own defaults (vllm 0.33.0 vllm/config/speculative.py), written out
        "suffix_decoding_max_cached_requests": 10000, "suffix_decoding_max_spec_factor": 1.0}
    assert _keys("vllm", version, method="draft", k=4, head=DRAFT) == {
        "method": "draft_model", "model": DRAFT, "num_speculative_tokens": 4}


@pytest.mark.parametrize("version", ["0.9.2", "0.12.0"])
def test_vllm_older_lines_name_mtp_deepseek_mtp(version: str) -> None:
    assert _keys("vllm", version, method="mtp", k=1) == {"method": "deepseek_mtp", "num_speculative_tokens": 1}
    assert _keys("vllm", version, method="eagle3", k=2, head=HEAD) == {
        "method": "eagle3", "model": HEAD, "num_speculative_tokens": 2}
    assert _keys("vllm", version, method="ngram", k=3) == {"method": "ngram", "num_speculative_tokens": 3}
    assert "first in release line 0.15-0.24" in _refusal("vllm", version, method="suffix")


def test_vllm_flag_line_and_refusals() -> None:
    line = method_line("vllm", "0.7.3")
    args = method_args("vllm", method_settings(method="ngram", k=4, prompt_lookup_max=3), line)
    assert args.section == "config_keys" and args.keys == {
        "speculative-model": "[ngram]", "num-speculative-tokens": 4, "ngram-prompt-lookup-max": 3}
    # every flag written is one the 0.6-0.8.1 line of server_args/vllm.yaml lists
    listed = set(next(e for e in server_args("vllm")["lines"] if e["name"] == "0.6-0.8.1")["config_keys"])
    assert set(args.keys) <= listed
    assert _refusal("vllm", "0.7.3", method="eagle3", k=3, head=HEAD) == (
        "vLLM 0.6-0.8.1: no eagle3 method: first in release line 0.8.2-0.9")
    assert "cannot" not in _refusal("vllm", "0.12.0", method="draft", k=3, head=DRAFT).split(":")[0]
    assert "PR #21152" in _refusal("vllm", "0.12.0", method="draft", k=3, head=DRAFT)
    assert "PR #7737" in _refusal("vllm", "0.5.4", method="ngram", k=3)
    tree = _refusal("vllm", None, method="eagle3", head=HEAD, num_steps=3, topk=4, num_draft_tokens=8)
    assert tree.startswith("vLLM 0.25+ runs eagle3 as a chain only (topk 1), not a tree of topk 4") and "SGLang" in tree


def test_vllm_config_style_keys_are_speculative_config_fields() -> None:
    """Keys written for the config lines are among the SpeculativeConfig fields server_args/vllm.yaml lists."""
    extra = {"suffix_decoding_max_tree_depth", "suffix_decoding_max_cached_requests", "suffix_decoding_max_spec_factor",
             "suffix_decoding_min_token_prob"}  # read in 0.33.0, not in vllm.yaml's list
    for entry in server_args("vllm")["lines"]:
        methods = method_data()["vllm"]["lines"][entry["name"]].get("methods", {})
        if method_data()["vllm"]["lines"][entry["name"]].get("section") != "speculative-config" or "refuse" in entry:
            continue  # the 0.10-0.14 line's keys are checked by vLLM itself (tests/test_real_method_exports.py)
        listed = set(entry.get("speculative_config_keys", ())) | extra
        for spec in methods.values():
            assert set(spec["keys"]) <= listed, (entry["name"], set(spec["keys"]) - listed)


# --- SGLang ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.5.3", "0.5.23"])
def test_sglang_heads_chain_and_tree(version: str) -> None:
    assert _keys("sglang", version, method="eagle3", k=3, head=HEAD) == {
        "speculative-algorithm": "EAGLE3", "speculative-draft-model-path": HEAD, "speculative-num-steps": 3,
        "speculative-eagle-topk": 1, "speculative-num-draft-tokens": 4}
    assert _keys("sglang", version, method="eagle", head=EAGLE1, num_steps=5, topk=8, num_draft_tokens=32) == {
        "speculative-algorithm": "EAGLE", "speculative-draft-model-path": EAGLE1, "speculative-num-steps": 5,
        "speculative-eagle-topk": 8, "speculative-num-draft-tokens": 32}
    assert _keys("sglang", version, method="mtp", k=3) == {
        "speculative-algorithm": "NEXTN", "speculative-num-steps": 3, "speculative-eagle-topk": 1,
        "speculative-num-draft-tokens": 4}
    assert "no suffix method" in _refusal("sglang", version, method="suffix")


def test_sglang_ngram_keys_per_line() -> None:
    settings = dict(method="ngram", k=7, prompt_lookup_min=2, prompt_lookup_max=10, ngram_max_bfs_breadth=8,
                    ngram_branch_length=16)
    assert _keys("sglang", "0.5.3", **settings) == {
        "speculative-algorithm": "NGRAM", "speculative-num-draft-tokens": 8,
        "speculative-ngram-min-match-window-size": 2, "speculative-ngram-max-match-window-size": 10,
        "speculative-ngram-max-bfs-breadth": 8, "speculative-ngram-branch-length": 16}
    newer = method_args("sglang", method_settings(**settings), method_line("sglang", "0.5.23"))
    assert newer.keys == {"speculative-algorithm": "NGRAM", "speculative-num-draft-tokens": 8,
                          "speculative-ngram-max-bfs-breadth": 8, "speculative-ngram-max-trie-depth": 16}
    assert newer.notes[-1] == "prompt_lookup_max, prompt_lookup_min: no key on SGLang 0.5.7+, left to the server"
    assert "PR #10534" in _refusal("sglang", "0.5.2", method="eagle3", k=3, head=HEAD)


# --- TensorRT-LLM ------------------------------------------------------------------------------------------

def test_trtllm_lines() -> None:
    assert _keys("trtllm", "1.2.0", method="eagle3", k=3, head=HEAD) == {
        "decoding_type": "Eagle3", "max_draft_len": 3, "speculative_model": HEAD}
    assert _keys("trtllm", "1.2.0", method="eagle3", head=HEAD, num_steps=3, topk=4, num_draft_tokens=11) == {
        "decoding_type": "Eagle3", "max_draft_len": 3, "speculative_model": HEAD, "use_dynamic_tree": True,
        "dynamic_tree_max_topK": 4, "max_total_draft_tokens": 10}
    assert _keys("trtllm", "1.0", method="eagle3", k=3, head=HEAD) == {
        "decoding_type": "Eagle", "max_draft_len": 3, "speculative_model_dir": HEAD, "eagle3_one_model": True}
    for version in ("1.0", "1.2.0"):
        assert _keys("trtllm", version, method="mtp", k=2) == {"decoding_type": "MTP", "num_nextn_predict_layers": 2}
        assert _keys("trtllm", version, method="ngram", k=4, prompt_lookup_max=3) == {
            "decoding_type": "NGram", "max_draft_len": 4, "max_matching_ngram_size": 3}
    # SGLang's docs tree (5 steps, topk 8, 64 tokens) is beyond TRT-LLM's topK x max_draft_len = 40
    assert "exceeds topk 8 x 5 steps = 40" in _refusal("trtllm", "1.2.0", method="eagle3", head=HEAD, num_steps=5,
                                                         topk=8, num_draft_tokens=64)
    assert "chain only" in _refusal("trtllm", "1.0", method="eagle3", head=HEAD, num_steps=3, topk=4,
                                    num_draft_tokens=11)
    assert "nearest alternative: method eagle3" in _refusal("trtllm", "1.2.0", method="eagle", k=3, head=EAGLE1)
    assert "vLLM >= 0.15 (method suffix)" in _refusal("trtllm", "1.2.0", method="suffix")
    # decoding_type values are among those server_args/trtllm.yaml read for the line
    for entry in server_args("trtllm")["lines"]:
        for spec in method_data()["trtllm"]["lines"][entry["name"]].get("methods", {}).values():
            assert spec["keys"]["decoding_type"] in entry["decoding_types"]


# --- llama.cpp ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "expected"), [
    ("ngram-simple", {"--spec-type": "ngram-simple", "--spec-ngram-simple-size-n": 4, "--spec-ngram-simple-size-m": 8}),
    ("ngram-map-k", {"--spec-type": "ngram-map-k", "--spec-ngram-map-k-size-n": 4, "--spec-ngram-map-k-size-m": 8}),
    ("ngram-map-k4v", {"--spec-type": "ngram-map-k4v", "--spec-ngram-map-k4v-size-n": 4,
                       "--spec-ngram-map-k4v-size-m": 8}),
    ("ngram-mod", {"--spec-type": "ngram-mod", "--spec-ngram-mod-n-match": 4, "--spec-ngram-mod-n-max": 8}),
    ("ngram-cache", {"--spec-type": "ngram-cache", "--spec-draft-n-max": 8}),
])
def test_llamacpp_ngram_types(kind: str, expected: dict) -> None:
    assert _keys("llamacpp", "b11312", method="ngram", k=8, prompt_lookup_max=4, llamacpp_ngram_type=kind) == expected


def test_llamacpp_heads_and_refusals() -> None:
    assert _keys("llamacpp", "b11312", method="eagle3", k=3, head="eagle3-head.gguf") == {
        "--spec-type": "draft-eagle3", "--spec-draft-model": "eagle3-head.gguf", "--spec-draft-n-max": 3}
    assert _keys("llamacpp", "b11312", method="mtp", k=2) == {"--spec-type": "draft-mtp", "--spec-draft-n-max": 2}
    assert _keys("llamacpp", "b8000", method="draft", k=6, head="draft.gguf") == {
        "--model-draft": "draft.gguf", "--draft-max": 6}
    assert _refusal("llamacpp", "b8000", method="ngram", k=4) == (
        "llama.cpp llama-server classic: no ngram method: first in release line spec-draft")
    assert "method eagle3" in _refusal("llamacpp", "b11312", method="eagle", k=3, head="h.gguf")
    # every --spec-type written is one the spec-draft line of server_args/llamacpp.yaml lists
    entry = next(e for e in server_args("llamacpp")["lines"] if e["name"] == "spec-draft")
    ngram = method_data()["llamacpp"]["lines"]["spec-draft"]["methods"]["ngram"]["variants"]
    assert {v["--spec-type"] for v in ngram.values()} <= set(entry["spec_types"])


# --- the data and the settings -----------------------------------------------------------------------------

def test_methods_data_names_every_line_of_each_server() -> None:
    for server in ("vllm", "sglang", "trtllm", "llamacpp"):
        assert list(method_data()[server]["lines"]) == [e["name"] for e in server_args(server)["lines"]]
        for name in method_data()[server]["lines"]:
            method_line(server, name)  # every line is selectable by its name, refused ones included
    assert lines_with("vllm", "suffix") == ["0.15-0.24", "0.25+"]
    assert lines_with("sglang", "ngram") == ["0.5.3-0.5.6", "0.5.7+"]
    assert set(METHODS) == {"draft", "eagle", "eagle3", "mtp", "ngram", "suffix"}


@pytest.mark.parametrize(("fields", "part"), [
    (dict(method="eagle3", k=3), "needs the head's Hub id or local path"),
    (dict(method="draft", head=DRAFT), "needs k"),
    (dict(method="ngram", k=0), "k: Input should be greater than or equal to 1"),
    (dict(method="ngram", k=3, prompt_lookup_min=5, prompt_lookup_max=2), "prompt_lookup_min 5 must be <= prompt_lookup_max 2"),
    (dict(method="ngram", k=3, prompt_lookup_max=2000), "less than or equal to 1024"),
    (dict(method="eagle3", head=HEAD, num_steps=3, topk=2), "num_steps, topk and num_draft_tokens together"),
    (dict(method="eagle3", head=HEAD, num_steps=3, topk=2, num_draft_tokens=12), "exceeds the 11 candidates"),
    (dict(method="eagle3", head=HEAD, num_steps=3, topk=1, num_draft_tokens=3), "num_steps + 1 = 4"),
    (dict(method="suffix", num_steps=3, topk=2, num_draft_tokens=4), "takes no tree shape"),
    (dict(method="suffix", suffix_min_token_prob=1.5), "less than or equal to 1"),
    (dict(method="medusa", k=3), "method: Input should be"),
    (dict(method="ngram", k=3, window=4), "Extra inputs are not permitted"),
])
def test_settings_refused_on_one_line(fields: dict, part: str) -> None:
    with pytest.raises(SpecplanError) as err:
        method_settings(**fields)
    assert part in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_settings_no_key_reads_are_noted() -> None:
    vllm = method_args("vllm", method_settings(method="ngram", k=4, prompt_lookup_max=5, ngram_max_bfs_breadth=8),
                       method_line("vllm", None))
    assert vllm.notes == ("ngram_max_bfs_breadth: no key on vLLM 0.25+, left to the server",)
    chain = method_args("sglang", method_settings(method="eagle3", k=3, head=HEAD), method_line("sglang", None))
    assert chain.notes == ()  # k is read through num-steps and num-draft-tokens
    cache = method_args("llamacpp", method_settings(method="ngram", k=4, prompt_lookup_max=3,
                                                    llamacpp_ngram_type="ngram-cache"), method_line("llamacpp", None))
    assert cache.notes == ("prompt_lookup_max: no key on llama.cpp llama-server spec-draft, left to the server",)


def test_tree_candidates_by_hand() -> None:
    assert tree_candidates(5, 8) == 1 + 8 + 4 * 64 == 265  # SGLang docs' 5 / 8 / 64 tree fits
    assert tree_candidates(4, 1) == 5  # a chain: k + 1


def test_chain_defaults() -> None:
    chain = method_settings(method="eagle3", k=4, head=HEAD)
    assert (chain.steps, chain.breadth, chain.draft_tokens, chain.is_tree, chain.tree_nodes) == (4, 1, 5, False, None)
    tree = method_settings(method="eagle3", head=HEAD, num_steps=5, topk=8, num_draft_tokens=64)
    assert (tree.steps, tree.breadth, tree.draft_tokens, tree.tree_topk, tree.tree_nodes) == (5, 8, 64, 8, 63)
