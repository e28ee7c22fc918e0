"""Issue 8 point 2: every output names each model as the user gave it.

A Hub id is printed exactly as typed (Instruct, -it, R1), a short catalogue alias as its
release's Hub id, a local folder as its absolute path; recommend drafts an Instruct target
with Instruct releases, and every draft it names resolves when typed back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from planner.catalog.loading import model_catalog
from planner.catalog.lookup import find_model, model_name
from planner.cli import main
from planner.drafts import draft_candidates
from planner.errors import SpecplanError
from planner.plan import RecommendInputs, recommend
from planner.requests import FitInputs

TARGET, DRAFT = "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"
PAIR = ["--target", TARGET, "--draft", DRAFT, "--gpu", "h100-sxm", "--gpus", "2"]
CONFIGS = Path(__file__).parent / "data" / "configs"
SERVER = Path(__file__).parent / "data" / "server"
WIDE = {"COLUMNS": "240"}  # a wide terminal, so a table line holds a whole pair of ids


def _json(runner, *args):
    result = runner.invoke(main, [*args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def _table(runner, *args):
    result = runner.invoke(main, list(args), env=WIDE)
    assert result.exit_code in (0, 1), result.output
    return result.stdout


# --- the issue's example: a 70B Instruct target with a 1B Instruct draft --------------------------------


def test_fit_estimate_json_and_tables_name_the_instruct_pair(runner):
    fit = _json(runner, "fit", *PAIR)
    est = _json(runner, "estimate", *PAIR)
    for data in (fit, est, est["fit"]):
        assert (data["target"], data["draft"]) == (TARGET, DRAFT)
        assert (data["target_catalog_id"], data["draft_catalog_id"]) == (TARGET, DRAFT)
    for command in ("fit", "estimate"):
        out = _table(runner, command, *PAIR)
        assert f"{TARGET} + draft {DRAFT}" in out and "Llama-3.1-70B " not in out


def test_recommend_for_an_instruct_target_ranks_instruct_drafts(runner):
    data = _json(runner, "recommend", "--target", TARGET, "--gpu", "h100-sxm", "--gpus", "2", "--top", "50")
    assert data["target"] == TARGET and data["target_catalog_id"] == TARGET
    drafts = {c["draft"] for c in data["candidates"] if c["draft"]}
    assert DRAFT in drafts
    assert drafts <= {"meta-llama/Llama-3.1-8B-Instruct", DRAFT, "meta-llama/Llama-3.2-3B-Instruct"}
    assert TARGET in _table(runner, "recommend", "--target", TARGET, "--gpu", "h100-sxm", "--gpus", "2")


def test_a_base_target_keeps_base_drafts(runner):
    data = _json(runner, "recommend", "--target", "meta-llama/Llama-3.1-70B", "--gpu", "h100-sxm", "--gpus", "2",
                 "--top", "50")
    assert data["target"] == "meta-llama/Llama-3.1-70B"
    assert {c["draft"] for c in data["candidates"] if c["draft"]} == {
        "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B"}


def test_report_title_names_the_typed_target(runner, tmp_path):
    out = tmp_path / "plan.html"
    result = runner.invoke(main, ["report", "--target", TARGET, "--gpu", "h100-sxm", "--gpus", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert f"<title>specplan: {TARGET} on 2 x h100-sxm</title>" in html
    assert f"<h1>Speculative decoding plan: {TARGET}</h1>" in html
    assert "Llama-3.2-1B-Instruct" in html or "Llama-3.1-8B-Instruct" in html or "Llama-3.2-3B-Instruct" in html


def test_exported_plan_names_the_instruct_pair(runner, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_json(runner, "estimate", *PAIR)), encoding="utf-8")
    out = tmp_path / "serve.yaml"
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(plan), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = "".join(p.read_text(encoding="utf-8") for p in tmp_path.iterdir() if p.name != "plan.json")
    assert TARGET in text and DRAFT in text and "Llama-3.1-70B\n" not in text and "Llama-3.2-1B\"" not in text


# --- spellings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed, shown", [
    (TARGET, TARGET),
    ("  META-LLAMA/llama-3.1-70b-INSTRUCT ", "META-LLAMA/llama-3.1-70b-INSTRUCT"),  # a Hub id as typed
    ("meta-llama/Meta-Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B-Instruct"),  # the old repo name
    ("llama-3.1-70b-instruct", TARGET),  # a short alias is not a repo: the release's Hub id
    ("Llama-3.1-70B-Instruct", TARGET),  # the repo name without its organisation
    ("llama-3.1-70b", "meta-llama/Llama-3.1-70B"),
    ("gemma-2-9b-it", "google/gemma-2-9b-it"),
    ("deepseek-r1", "deepseek-ai/DeepSeek-R1"),
])
def test_names_are_kept_as_typed(typed, shown):
    assert model_name(typed) == shown
    assert find_model(typed).name == shown


def test_deepseek_r1_stays_r1_and_shares_v3s_architecture(runner):
    r1, v3 = find_model("deepseek-ai/DeepSeek-R1").spec, find_model("deepseek-ai/DeepSeek-V3").spec
    assert (r1.id, r1.kind, r1.catalog_id, r1.variant_of) == ("deepseek-ai/DeepSeek-R1", "reasoning",
                                                                "deepseek-ai/DeepSeek-R1", v3.id)
    same = r1.model_dump(exclude={"id", "aliases", "kind", "variant_of", "catalog_id", "source", "notes"})
    assert same == v3.model_dump(exclude={"id", "aliases", "kind", "variant_of", "catalog_id", "source", "notes"})
    data = _json(runner, "estimate", "--target", "deepseek-ai/DeepSeek-R1", "--draft", "deepseek-r1-draft-0.5b",
                 "--gpu", "h200-sxm", "--gpus", "8", "--precision", "fp8")
    assert data["target"] == "deepseek-ai/DeepSeek-R1" and data["draft"] == "jukofyork/DeepSeek-R1-DRAFT-0.5B-v1.0"
    assert "DeepSeek-V3" not in json.dumps(data)


@pytest.mark.parametrize("distill, base", [("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "meta-llama/Llama-3.1-8B"),
                                           ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "Qwen/Qwen2.5-32B")])
def test_r1_distills_are_releases_of_the_architecture_they_fine_tune(runner, distill, base):
    spec, entry = find_model(distill.lower().split("/")[1]).spec, find_model(base).spec
    assert (spec.id, spec.kind, spec.variant_of) == (distill, "reasoning", base)
    assert spec.total_params == entry.total_params and spec.tokenizer != entry.tokenizer  # renamed special tokens
    assert all(d.id != distill for d in draft_candidates(find_model("qwen2.5-72b-instruct").spec).drafts)
    assert all(d.id != distill for d in draft_candidates(find_model("llama-3.1-70b-instruct").spec).drafts)
    assert _json(runner, "fit", "--target", distill, "--gpu", "h200-sxm")["target"] == distill


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.1-70B\n-Instruct", "llama\x1b[31m", "a\u2028b"])
def test_control_characters_in_a_name_are_refused(runner, name):
    with pytest.raises(SpecplanError, match="control character"):
        find_model(name)
    result = runner.invoke(main, ["fit", "--target", name, "--gpu", "h100-sxm"])
    assert result.exit_code == 2 and "control character" in result.output and "Traceback" not in result.output


# --- local folders ---------------------------------------------------------------------------------------


@pytest.fixture
def support_bot(tmp_path, monkeypatch):
    """A fine-tune of Llama 3.1 8B in ./my-support-bot-8b whose config names it by a bare repo name."""
    folder = tmp_path / "my-support-bot-8b"
    folder.mkdir()
    cfg = json.loads((CONFIGS / "meta-llama--Llama-3.1-8B.json").read_text(encoding="utf-8"))
    cfg["_name_or_path"] = "my-support-bot-8b"
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return folder.resolve()


def test_a_local_folder_is_named_by_its_absolute_path_everywhere(runner, support_bot):
    args = ["--target", "./my-support-bot-8b", "--draft", "llama-3.2-1b", "--gpu", "h100-sxm"]
    est = _json(runner, "estimate", *args)
    assert est["target"] == est["fit"]["target"] == str(support_bot) and est["target_catalog_id"] is None
    assert _json(runner, "fit", *args)["target"] == str(support_bot)
    assert str(support_bot) in _table(runner, "estimate", *args)
    rec = _json(runner, "recommend", "--target", "./my-support-bot-8b", "--gpu", "h100-sxm")
    assert rec["target"] == str(support_bot)
    for spelling in ("my-support-bot-8b/", str(support_bot / "config.json"), "./my-support-bot-8b/../my-support-bot-8b"):
        assert find_model(spelling).name == str(support_bot)
    out = support_bot.parent / "serve.yaml"
    result = runner.invoke(main, ["export", "--server", "vllm", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["model"] == str(support_bot)


def test_a_local_chat_fine_tune_gets_instruct_drafts(support_bot):
    assert find_model("./my-support-bot-8b").spec.kind == "base"
    (support_bot / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}), encoding="utf-8")
    spec = find_model("./my-support-bot-8b").spec
    assert spec.kind == "instruct" and spec.variant_of == "meta-llama/Llama-3.1-8B"
    assert {d.id for d in draft_candidates(spec).drafts} == {DRAFT, "meta-llama/Llama-3.2-3B-Instruct"}


# --- calibrate names models as the plans do ----------------------------------------------------------------


def test_calibrate_writes_the_names_a_plan_uses(runner, support_bot):
    out = support_bot.parent / "cal.yaml"
    args = ["calibrate", "--vllm-metrics-before", str(SERVER / "vllm_v1_before.prom"), "--vllm-metrics",
            str(SERVER / "vllm_v1_after.prom"), "--target", "./my-support-bot-8b", "--draft", "llama-3.2-1b-instruct",
            "-o", str(out)]
    result = runner.invoke(main, args, env=WIDE)
    assert result.exit_code == 0, result.output
    cal = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert (cal["target"]["id"], cal["draft"]["id"]) == (str(support_bot), DRAFT)
    assert str(support_bot) in result.stdout and DRAFT in result.stdout
    est = _json(runner, "estimate", "--target", str(support_bot), "--draft", DRAFT, "--gpu", "h100-sxm",
                "--calibration", str(out))
    assert est["alpha_source"] == "calibration"


def test_a_base_pair_calibration_does_not_stand_for_the_instruct_pair(runner, tmp_path):
    out = tmp_path / "cal.yaml"
    args = ["calibrate", "--vllm-metrics-before", str(SERVER / "vllm_v1_before.prom"), "--vllm-metrics",
            str(SERVER / "vllm_v1_after.prom"), "--target", "llama-3.1-8b", "--draft", "llama-3.2-1b", "-o", str(out)]
    assert runner.invoke(main, args).exit_code == 0
    base = ["--target", "meta-llama/Llama-3.1-8B", "--draft", "meta-llama/Llama-3.2-1B", "--gpu", "h100-sxm"]
    assert _json(runner, "estimate", *base, "--calibration", str(out))["alpha_source"] == "calibration"
    instruct = _json(runner, "estimate", "--target", "meta-llama/Llama-3.1-8B-Instruct", "--draft", DRAFT,
                     "--gpu", "h100-sxm", "--calibration", str(out))
    assert instruct["alpha_source"] == "prior" and any("not this pair" in w for w in instruct["warnings"])


# --- the catalogue's releases ---------------------------------------------------------------------------------


def test_models_lists_each_release_with_its_kind(runner):
    rows = {m["id"]: m for m in _json(runner, "models")}
    for release, kind, base in [(TARGET, "instruct", "meta-llama/Llama-3.1-70B"),
                                ("google/gemma-2-9b-it", "instruct", "google/gemma-2-9b"),
                                ("Qwen/Qwen3-8B-Base", "base", "Qwen/Qwen3-8B"),
                                ("deepseek-ai/DeepSeek-R1", "reasoning", "deepseek-ai/DeepSeek-V3")]:
        assert rows[release]["kind"] == kind and rows[release]["variant_of"] == base
        assert rows[release]["num_layers"] == rows[base]["num_layers"]
    assert rows["meta-llama/Llama-3.1-70B"]["kind"] == "base" and "variant_of" not in rows["meta-llama/Llama-3.1-70B"]
    assert TARGET in _table(runner, "models", "--family", "llama")


def test_no_alias_names_another_released_repo():
    """Instruct/-it/chat/Base/R1 repos are releases of their own, not aliases of another id."""
    ids = {m.id.lower() for m in model_catalog()}
    for m in model_catalog():
        for alias in m.aliases:
            assert alias.lower() not in ids - {m.id.lower()}
            if "/" in alias:  # only the same repo under an older name (Meta-Llama-3.1-*) or a GGUF copy
                assert alias.rsplit("/", 1)[-1].lower().replace("meta-", "") in (
                    m.id.rsplit("/", 1)[-1].lower(), m.id.rsplit("/", 1)[-1].lower() + "-gguf")


# --- every draft recommend prints resolves when typed back ----------------------------------------------------


@pytest.mark.parametrize("target", [m.id for m in model_catalog()])
def test_every_recommended_draft_resolves_when_typed_back(target):
    rec = recommend(RecommendInputs(FitInputs(target=target, gpu="h200-sxm", gpus=8), top=1000))
    assert rec.request.target.id == target
    kind = rec.request.target.kind
    notes = " ".join(rec.warnings)
    for c in rec.candidates:
        if c.draft is None:
            continue
        for typed in (c.draft, c.draft.rsplit("/", 1)[-1]):  # the JSON's id and the table's repo name
            back = find_model(typed)
            assert back.name == c.draft and back.spec.catalog_id == c.draft
        draft_kind = find_model(c.draft).spec.kind
        assert draft_kind in (kind, "draft") or (kind == "reasoning" and draft_kind == "instruct") or c.draft in notes


def test_a_missing_instruct_release_is_said(runner):
    data = _json(runner, "recommend", "--target", "codellama/CodeLlama-34b-Instruct-hf", "--gpu", "h200-sxm",
                 "--top", "100")
    assert "codellama/CodeLlama-7b-Python-hf" in {c["draft"] for c in data["candidates"]}
    assert any("no instruct release" in w and "CodeLlama-7b-Python-hf" in w for w in data["warnings"])


# --- the loader ---------------------------------------------------------------------------------------------


def _load(tmp_path, text):
    from planner.catalog.loading import load_entries

    folder = tmp_path / "db"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "m.yaml").write_text(text, encoding="utf-8")
    return load_entries(folder, "models", type(next(iter(model_catalog()))), "db")


_ENTRY = """models:
  - id: org/Base-1B
    aliases: [base-1b]
    family: t
    generation: "1"
    architecture: llama
    tokenizer: t
    tokenizer_vocab_size: 100
    vocab_size: 128
    num_layers: 2
    hidden_size: 64
    num_attention_heads: 4
    num_kv_heads: 4
    head_dim: 16
    intermediate_size: 128
    tie_word_embeddings: true
    max_context_tokens: 4096
    source: "https://example.org/org/Base-1B/config.json"
    variants:
      - id: org/Base-1B-Instruct
        kind: instruct
        aliases: [VARIANT_ALIAS]
        max_context_tokens: 2048
        source: "https://example.org/org/Base-1B-Instruct/config.json"
"""


def test_the_loader_expands_variants_into_their_own_entries(tmp_path):
    base, instruct = _load(tmp_path, _ENTRY.replace("VARIANT_ALIAS", "base-1b-instruct"))
    assert (instruct.id, instruct.kind, instruct.variant_of, instruct.catalog_id) == (
        "org/Base-1B-Instruct", "instruct", "org/Base-1B", "org/Base-1B-Instruct")
    assert instruct.max_context_tokens == 2048 and base.max_context_tokens == 4096
    assert instruct.num_layers == base.num_layers and instruct.source[-1] == base.source


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("VARIANT_ALIAS", "base-1b"), "already used by"),
    (lambda t: t.replace("VARIANT_ALIAS", "x").replace("id: org/Base-1B-Instruct", "id: org/Base-1B"), "duplicate id"),
    (lambda t: t.replace("VARIANT_ALIAS", "x").replace("kind: instruct", "kind: chat"), "variants|kind"),
    (lambda t: t.replace("VARIANT_ALIAS", "x").replace("    family: t", "    variant_of: org/X\n    family: t"),
     "set by the loader"),
    (lambda t: t.replace("VARIANT_ALIAS", "x").replace("        kind: instruct", "        kind: instruct\n        num_layers: 9"),
     "num_layers"),
])
def test_the_loader_refuses_bad_variants(tmp_path, edit, message):
    from planner.errors import CatalogError

    with pytest.raises(CatalogError, match=message):
        _load(tmp_path, edit(_ENTRY))
