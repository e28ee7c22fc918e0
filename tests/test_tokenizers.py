"""Tokenizer compatibility from the token -> id map: appended tokens, padded vocab, UAG on transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.catalog.lookup import check_tokenizers, find_model
from planner.catalog.tokenizers import compare_token_maps, cross_tokenizer, match_tokenizers
from planner.cli import main
from planner.drafts import draft_candidates
from planner.errors import IncompatiblePairError
from tests.conftest import make_model

BASE = {i: f"t{i}" for i in range(32)}


def _folder(root: Path, name: str, vocab: dict[str, int], added: dict[str, int] | None = None,
            vocab_rows: int = 48, layers: int = 2, hidden: int = 16) -> Path:
    """A tiny llama checkpoint folder: config.json (``vocab_rows`` embedding rows, padded) and tokenizer.json."""
    folder = root / name
    folder.mkdir()
    cfg = {"model_type": "llama", "num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": 2,
           "num_key_value_heads": 1, "intermediate_size": 2 * hidden, "vocab_size": vocab_rows,
           "max_position_embeddings": 64, "torch_dtype": "bfloat16", "_name_or_path": f"local/{name}"}
    (folder / "config.json").write_text(json.dumps(cfg))
    tok = {"model": {"vocab": vocab}, "added_tokens": [{"id": i, "content": t} for t, i in (added or {}).items()]}
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    return folder


def _vocab(n: int) -> dict[str, int]:
    return {f"t{i}": i for i in range(n)}


# --- the map comparison ----------------------------------------------------------------------------------


def test_same_map_is_same():
    assert compare_token_maps(BASE, dict(BASE)).relation == "same"


def test_appended_tokens_either_side_are_compatible():
    longer = {**BASE, 32: "<PRE>", 33: "<SUF>", 34: "<MID>"}
    m = compare_token_maps(BASE, longer)
    assert m.relation == "appended" and m.compatible and (m.shared_ids, m.appended_draft, m.appended_target) == (32, 3, 0)
    back = compare_token_maps(longer, BASE)
    assert back.compatible and back.appended_target == 3


def test_one_changed_id_or_a_hole_is_different():
    changed = {**BASE, 7: "other"}
    m = compare_token_maps(BASE, changed)
    assert m.relation == "different" and not m.compatible and "id 7" in m.detail
    holed = {i: t for i, t in BASE.items() if i != 5} | {32: "x"}
    assert compare_token_maps(BASE, holed).relation == "different"


# --- local folders: tokenizer.json read back --------------------------------------------------------------


def test_local_pair_with_appended_special_tokens_is_valid(tmp_path):
    target = find_model(str(_folder(tmp_path, "big", _vocab(32), layers=4, hidden=32))).spec
    draft = find_model(str(_folder(tmp_path, "small", _vocab(32), {"<fim_prefix>": 32, "<fim_suffix>": 33}))).spec
    assert target.tokenizer != draft.tokenizer  # the identities (hashes) differ ...
    assert match_tokenizers(target, draft).relation == "appended"  # ... the ids agree
    note = check_tokenizers(target, draft, engine="llamacpp")
    assert note is not None and "appends 2 token(s)" in note


def test_padded_vocab_rows_do_not_matter(tmp_path):
    target = find_model(str(_folder(tmp_path, "big", _vocab(32), vocab_rows=64, layers=4, hidden=32))).spec
    draft = find_model(str(_folder(tmp_path, "small", _vocab(32), vocab_rows=40))).spec
    assert target.vocab_size != draft.vocab_size
    assert check_tokenizers(target, draft) is None


def test_local_pair_with_another_map_is_refused_but_runs_on_hf(tmp_path):
    target = find_model(str(_folder(tmp_path, "big", _vocab(32), layers=4, hidden=32))).spec
    other = {f"u{i}": i for i in range(32)}
    draft = find_model(str(_folder(tmp_path, "small", other))).spec
    with pytest.raises(IncompatiblePairError, match="id 0 is 't0'.*--engine hf"):
        check_tokenizers(target, draft, engine="vllm")
    assert "universal assisted generation" in check_tokenizers(target, draft, engine="hf")
    assert cross_tokenizer(target, draft)


# --- catalogue entries: identity plus tokenizer_base -------------------------------------------------------


def test_codellama_34b_and_7b_share_ids():
    t34, t7 = find_model("codellama/CodeLlama-34b-hf").spec, find_model("codellama/CodeLlama-7b-hf").spec
    m = match_tokenizers(t34, t7)
    assert m.relation == "appended" and (m.shared_ids, m.appended_draft) == (32000, 16)
    assert "appends 16" in check_tokenizers(t34, t7, engine="llamacpp")
    assert not cross_tokenizer(t34, t7)
    ids = {d.id for d in draft_candidates(t34).drafts}
    assert {"codellama/CodeLlama-7b-hf", "codellama/CodeLlama-13b-hf"} <= ids


def test_llamacpp_refuses_more_than_128_appended_tokens():
    base = make_model(id="t/base", tokenizer="b", tokenizer_vocab_size=1000, vocab_size=1024)
    wide = make_model(id="t/wide", tokenizer="w", tokenizer_vocab_size=1200, vocab_size=1280,
                      tokenizer_base="b", tokenizer_base_vocab_size=1000, num_layers=2)
    assert match_tokenizers(base, wide).compatible
    with pytest.raises(IncompatiblePairError, match="SPEC_VOCAB_MAX_SIZE_DIFFERENCE"):
        check_tokenizers(base, wide, engine="llamacpp")
    assert "appends 200" in check_tokenizers(base, wide, engine="vllm")


def test_two_extensions_of_one_base_are_not_assumed_compatible():
    a = make_model(id="t/a", tokenizer="a", tokenizer_vocab_size=1010, tokenizer_base="b", tokenizer_base_vocab_size=1000)
    c = make_model(id="t/c", tokenizer="c", tokenizer_vocab_size=1016, tokenizer_base="b", tokenizer_base_vocab_size=1000)
    assert match_tokenizers(a, c).relation == "different"


def test_cross_tokenizer_drafts_are_candidates_only_when_asked():
    target = find_model("google/gemma-2-9b").spec
    assert all(d.tokenizer == target.tokenizer for d in draft_candidates(target).drafts)
    assert "double7/vicuna-68m" in {d.id for d in draft_candidates(target, include_cross_tokenizer=True).drafts}


# --- the command line ---------------------------------------------------------------------------------------


def test_cli_codellama_pair_on_llamacpp(runner):
    result = runner.invoke(main, ["estimate", "--target", "codellama/CodeLlama-34b-hf", "--draft",
                                  "codellama/CodeLlama-7b-hf", "--gpu", "a100-sxm-80gb", "--engine", "llamacpp",
                                  "--task", "code", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["speedup"] > 1.0


def test_cli_cross_tokenizer_pair_planned_on_hf_refused_elsewhere(runner):
    args = ["estimate", "--target", "google/gemma-2-9b", "--draft", "double7/vicuna-68m", "--gpu", "rtx-4090"]
    hf = runner.invoke(main, [*args, "--engine", "hf", "--task", "summarize"])
    assert hf.exit_code == 0, hf.output
    assert "universal assisted generation" in hf.output and "cross-tokenizer" in hf.output
    vllm = runner.invoke(main, [*args, "--engine", "vllm"])
    assert vllm.exit_code == 2 and "--engine hf" in vllm.stderr and "Traceback" not in vllm.output


def test_hf_export_passes_the_assistant_tokenizer(runner, tmp_path):
    out = tmp_path / "hf_assisted.py"
    result = runner.invoke(main, ["export", "--server", "hf", "--target", "google/gemma-2-9b", "--draft",
                                  "double7/vicuna-68m", "--gpu", "rtx-4090", "--engine", "hf", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "assistant_tokenizer = AutoTokenizer.from_pretrained(ASSISTANT)" in text
    assert "tokenizer=tokenizer, assistant_tokenizer=assistant_tokenizer" in text
    compile(text, str(out), "exec")
    same = tmp_path / "same.py"
    plain = runner.invoke(main, ["export", "--server", "hf", "--target", "meta-llama/Llama-3.1-8B", "--draft",
                                 "meta-llama/Llama-3.2-1B", "--gpu", "rtx-4090", "--engine", "hf", "-o", str(same)])
    assert plain.exit_code == 0, plain.output
    assert "assistant_tokenizer" not in same.read_text()


def test_cross_tokenizer_plan_is_not_exported_to_vllm(runner, tmp_path):
    plan = runner.invoke(main, ["estimate", "--target", "google/gemma-2-9b", "--draft", "double7/vicuna-68m",
                                "--gpu", "rtx-4090", "--engine", "hf", "--format", "json"])
    path = tmp_path / "plan.json"
    path.write_text(plan.stdout)
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(path), "-o", str(tmp_path / "v.yaml")])
    assert result.exit_code == 2 and "different tokenizers" in result.stderr
