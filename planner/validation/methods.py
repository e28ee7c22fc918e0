"""Section-B rows of heads, MTP and lookups (issue 12) as `specplan estimate --method ...` inputs.

A row's method words name the planner method (EAGLE and EAGLE-2: eagle, EAGLE-3: eagle3, MTP:
mtp, PLD / n-gram / prompt lookup: ngram, suffix); methods specplan does not plan (Medusa, Hydra,
Lookahead, REST, Token Recycling, SAM-Decoding, block-diffusion drafters) are skipped with what
they are. The rest maps as draft-model rows do (planner.validation.cases): the engine from the
row's words (Spec-Bench's research code on transformers = hf), the catalogue target, the GPU, the
precision, batch, context and task, plus:

* head: the row's Hub id when it names one and head_db holds it, else the catalogued head of
  that method for the target (said in the note); none catalogued: skipped, naming the release;
* k: the row's, else what the source ran (_CHAINS); none known: estimate's best k;
* acceptance: the published tau (Spec-Bench "#Mean Accepted Tokens", bonus token included) as
  --mean-accepted-length, or an acceptance rate, as the row gives it;
* trees: a row measured on a token tree (EAGLE-1's static tree in Spec-Bench, EAGLE-2/3 dynamic
  trees, SGLang's topk > 1 defaults, or the SGLang shape a row states in its own ``tree`` field) is
  priced at that tree: --tree NAME or --num-steps / --topk / --num-draft-tokens
  (planner.plan.given_tree); a tree the source does not state is skipped with TREE_REASON;
* Spec-Bench's EAGLE rows ran SafeAILab/EAGLE's own code (engine eagleref), not transformers'
  generate().
"""

from __future__ import annotations

import re
from typing import Any

from planner.errors import SpecplanError
from planner.proposers.catalog import head_catalog, heads_for
from planner.validation.cases import (Skip, SpecCase, _acceptance, _gpus, _measured_speedup, _task,
                                      case_from_section_b)
from planner.validation.names import engine_name_in, loop_version_in, source_format, source_gpu, source_model
from planner.validation.rows import MEASUREMENTS

__all__ = ["TREE_REASON", "PLANNED_METHODS", "case_from_b", "method_of_row", "is_method_row"]

TREE_REASON = "tree of unstated shape"
PLANNED_METHODS = ("eagle", "eagle3", "mtp", "ngram", "suffix")
_CONTEXT_TOKENS = 512  # as draft-model rows: mean cached 256 tokens, the decode check's default

# (pattern in the row's method words, planner method or None, what it is when specplan does not plan it);
# first match wins, so SAM-Decoding (EAGLE-2) is read before EAGLE-2.
_METHOD_WORDS: tuple[tuple[str, str | None, str], ...] = (
    (r"sam-decoding", None, "SAM-Decoding (a suffix automaton over the context and a corpus, feeding an EAGLE-2 "
                            "tree) is not a planned method"),
    # Before the EAGLE words: TensorRT-LLM names its default DeepSeek path "MTP Eagle" (the checkpoint's MTP
    # module run through the Eagle loop), which is MTP, not a head.
    (r"\bmtp\b", "mtp", ""),
    (r"eagle-?3", "eagle3", ""),
    (r"eagle", "eagle", ""),  # EAGLE-1 and EAGLE-2 serve the same head (planner/proposers/methods.yaml)
    (r"medusa", None, "Medusa (one extra lm_head per position over the last hidden state, a static tree) is not a "
                      "planned method"),
    (r"hydra", None, "Hydra (sequentially dependent Medusa-style heads, a static tree) is not a planned method"),
    (r"lookahead", None, "Lookahead decoding (a Jacobi lookahead branch and an n-gram pool verified in one pass) is "
                         "not a planned method"),
    (r"\brest\b", None, "REST (continuations retrieved from a datastore, verified as a trie) is not a planned method"),
    (r"recycling", None, "Token Recycling (an adjacency matrix of candidates, a static tree) is not a planned method"),
    (r"dspark|dflash", None, "a block (diffusion-style) drafter proposing k tokens in one pass is not a planned "
                             "method"),
    (r"n-?gram|\bpld\b|prompt lookup", "ngram", ""),
    (r"suffix", "suffix", ""),
)
_SPEC_BENCH = "spec-bench"
# Spec-Bench's evaluation/inference_eagle*.py run SafeAILab/EAGLE's EaModel (planner/engines.yaml eagleref).
_EAGLE_REFERENCE = "eagleref"
# Chains and trees the sources ran, where the row does not say (each read in the source named).
_SPEC_BENCH_PLD_K = 10  # hemingkx/Spec-Bench evaluation/inference_pld.py: draft_num_candidate_tokens=10, window 3
# Spec-Bench's EAGLE / EAGLE-2 trees: planner/priors/methods.yaml shapes of SB-V7-EAGLE (EAGLE-1's static
# mc_sim_7b_63, 26 verify tokens, depth 5) and SB-V7-EAGLE2 (dynamic, depth 6, topk 10, 60 verify tokens).
_SPEC_BENCH_TREES = {"eagle-2": {"num_steps": 6, "topk": 10, "num_draft_tokens": 60, "tree": "dynamic"},
                     "eagle": {"num_steps": 5, "topk": None, "num_draft_tokens": 26, "tree": "mc_sim_7b_63"}}
_EAGLEFAST = "k=5: the eaglefast branch drafts a chain of 5 (model/choices.py @ 3ad78694)"
# Facts of single rows that the row does not state, each read in the row's source.
_ROW_FACTS: dict[str, dict[str, Any]] = {
    # SafeAILab/EAGLE eaglefast branch model/choices.py @ 3ad78694275f847bad385b63b12b3cc1a5d2d770: the active
    # "tree" is mc_sim_7b_63 = [[0],[0,0],[0,0,0],[0,0,0,0],[0,0,0,0,0]], a chain of 5 drafts. LLaMA2-Chat 13B:
    # the chat release (the head's). README 'With gpt-fast': base and head both quantised to model_int4.g32.pth.
    "B-EAGLE-01": {"k": 5, "target": "meta-llama/Llama-2-13b-chat-hf", "engine": "eaglefast", "note": _EAGLEFAST},
    "B-EAGLE-02": {"k": 5, "target": "meta-llama/Llama-2-13b-chat-hf", "engine": "eaglefast", "precision": "int4-gptq",
                   "note": _EAGLEFAST + "; int4 G=32 priced as int4-gptq (group-wise int4); the head was quantised "
                           "too (README: model_int4.g32.pth) but specplan prices a head in its stored dtype (fp16)"},
    # docs.sglang.io speculative decoding, 'Performance Highlights': settings not stated; the page's defaults.
    **{rid: {"tree": {"num_steps": 5, "topk": 4, "num_draft_tokens": 8, "tree": "SGLang defaults"},
             "note": "settings not stated: the page's defaults (num_steps 5, eagle_topk 4, num_draft_tokens 8)"}
       for rid in ("B-SGL-01", "B-SGL-02")},
    "B-VLLM-04": {"skip": "slowdown at 'high QPS': the caption states no concurrency, so no batch can be priced"},
}
_NOT_STATED = ("not stated", "not named")


def method_of_row(row: dict[str, Any]) -> tuple[str | None, str]:
    """(planner method, "") for a row's method words, or (None, why specplan does not plan it)."""
    words = str(row.get("method") or "").lower()
    for pattern, method, why in _METHOD_WORDS:
        if re.search(pattern, words):
            return method, why
    return None, ""


def is_method_row(row: dict[str, Any]) -> bool:
    """Whether a section-B row measured a head, MTP, a lookup or another non-draft-model method."""
    method, why = method_of_row(row)
    return method is not None or bool(why)


def case_from_b(row: dict[str, Any]) -> SpecCase | Skip:
    """Any section-B row: a method row through case_from_method_row, a draft-model row as before."""
    return case_from_method_row(row) if is_method_row(row) else case_from_section_b(row)


def _stated(row: dict[str, Any], field: str) -> str:
    text = str(row.get(field) or "")
    if not text.strip() or any(w in text.lower() for w in _NOT_STATED):
        raise SpecplanError(f"{field} not stated ({text!r}): nothing to price")
    return text


def _head(row: dict[str, Any], method: str, target: str) -> tuple[str | None, str]:
    """The head to price and what the note says about it (MTP and lookups: none)."""
    if method not in ("eagle", "eagle3"):
        return None, ""
    named = str(row.get("draft") or "")
    entry = head_catalog().index.get(named.strip().lower()) if "/" in named else None
    if entry is not None and entry.method == method:
        return entry.id, ""
    found = heads_for(target, method)
    if not found:
        raise SpecplanError(f"no {method} head catalogued for {target} (the row's head: {named or 'not named'!r}; "
                            "head_db lists none for this release)")
    return found[0].id, f"the row names no catalogued head ({named!r}): the catalogued {found[0].id} priced"


def _tree(row: dict[str, Any], method: str, facts: dict[str, Any]) -> dict[str, Any] | None:
    """The token tree a row was measured on, or None for a chain."""
    if "tree" in facts:
        return facts["tree"]
    stated = row.get("tree")  # a row giving the SGLang shape it ran: {num_steps, topk, num_draft_tokens}
    if isinstance(stated, dict) and all(isinstance(stated.get(key), int) and not isinstance(stated.get(key), bool)
                                        and stated[key] > 0 for key in ("num_steps", "topk", "num_draft_tokens")):
        return {**stated, "tree": "stated in the row"}
    words = str(row.get("method") or "").lower()
    if _SPEC_BENCH in str(row.get("benchmark", "")).lower() and method == "eagle":
        return _SPEC_BENCH_TREES["eagle-2" if "eagle-2" in words else "eagle"]
    if "eagle-2" in words:  # EAGLE-2's method is its dynamic draft tree (arXiv:2406.16858)
        return {"num_steps": None, "topk": None, "num_draft_tokens": None, "tree": "dynamic (EAGLE-2)"}
    return None


def tree_flags(tree: dict[str, Any]) -> dict[str, Any]:
    """estimate's flags for a row's tree: --tree NAME (+ --num-draft-tokens) or the SGLang shape.

    Raises SpecplanError for a tree whose shape the source does not state (TREE_REASON)."""
    if tree.get("topk") is None and str(tree.get("tree", "")).startswith("mc_"):
        return {"tree": tree["tree"], "num_draft_tokens": tree["num_draft_tokens"]}
    if any(tree.get(key) is None for key in ("num_steps", "topk", "num_draft_tokens")):
        raise SpecplanError(f"{TREE_REASON} ({tree.get('tree')}): nothing to price")
    return {key: int(tree[key]) for key in ("num_steps", "topk", "num_draft_tokens")}


def case_from_method_row(row: dict[str, Any]) -> SpecCase | Skip:
    """A method row as estimate flags with its method and head, or why not (rules in the module docstring)."""
    rid = str(row.get("id", "?"))
    method, why = method_of_row(row)
    facts = _ROW_FACTS.get(rid, {})
    if method is None or facts.get("skip"):
        return Skip(rid, MEASUREMENTS, facts.get("skip") or why, method or str(row.get("method")))
    try:
        measured, kind = _measured_speedup(row)
        named = facts.get("target") or _stated(row, "target")
        target = facts.get("target") or source_model(re.sub(r"\s+(Q\d\S*(\s+MLX)?|int4.*|fp16)$", "", named,
                                                            flags=re.I)).id
        gpu = source_gpu(re.sub(r"^\s*\d+\s*x\s*", "", _stated(row, "hardware"))).id
        precision = facts.get("precision") or source_format(row.get("precision")).name
        head, head_note = _head(row, method, target)
    except SpecplanError as exc:
        return Skip(rid, MEASUREMENTS, str(exc), method)
    words = row.get("engine") or f"{row.get('method', '')} {row.get('source', '')}"
    spec_bench = _SPEC_BENCH in str(row.get("benchmark", "")).lower()
    tree = _tree(row, method, facts)
    prompt = (row.get("prompt_tokens") or 0) + (row.get("output_tokens") or 0)
    args: dict[str, Any] = {
        "target": target, "gpu": gpu, "gpus": _gpus(row), "engine": engine_name_in(words), "precision": precision,
        "batch": int(row.get("batch_size") or 1), "context": int(prompt) or _CONTEXT_TOKENS,
        "task": facts.get("task") or _task(row), "method": method,
    }
    if spec_bench and method in ("eagle", "eagle3"):
        args["engine"] = _EAGLE_REFERENCE
    if facts.get("engine"):
        args["engine"] = facts["engine"]
    if tree is not None:
        try:
            args.update(tree_flags(tree))
        except SpecplanError as exc:
            return Skip(rid, MEASUREMENTS, str(exc), method)
    if head:
        args["head"] = head
    version = loop_version_in(words, args["engine"])
    if version:
        args["server_version"] = version
    spec_bench_pld = method == "ngram" and spec_bench
    k = row.get("k") or facts.get("k") or (_SPEC_BENCH_PLD_K if spec_bench_pld else None)
    if k:
        args["k"] = int(k)
    notes = [n for n in (facts.get("note"), head_note,
                         "k=10: Spec-Bench inference_pld.py draft_num_candidate_tokens" if spec_bench_pld else "") if n]
    baseline = float(row["tok_s_baseline"]) if row.get("tok_s_baseline") else None
    return SpecCase(rid, MEASUREMENTS, tuple(args.items()), measured, kind, acceptance=_acceptance(row),
                    note="; ".join(notes), baseline_tokens_per_s=baseline, tree=tree)
