"""specplan validate: both public speculative sets, priced through estimate; skip reasons, summary, exit codes.

No test here pins an error figure: the cost model, draft loops and priors move them. What is pinned
is the harness: which rows are checked or skipped and why, where the numbers come from, which keys the
summary carries and when the command exits 1.
"""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.errors import SpecplanError
from planner.plan import EstimateInputs
from planner.validation import (
    MeasuredAcceptance, Targets, load_measurements, load_speculative_more, measured_acceptance_flags, summarize, validate,
)
from planner.validation import speculative as spec_mod
from planner.validation.methods import method_of_row
from planner.validation.rows import MEASUREMENTS, SPECULATIVE_MORE

DECODE_ROW = {"id": "A-1", "model": "Meta-Llama-3-8B", "quant": "Q4_K_M", "hardware": "NVIDIA GeForce RTX 4090 24GB",
              "n_gpus": 1, "engine": "llama.cpp (llama-bench)", "tg_tok_s": {"n512": 127.7}}
SPS_ROW = {"id": "B-SPS", "method": "SpS", "target": "Vicuna-7B-v1.3", "draft": "separate draft model (MCSD)",
           "hardware": "NVIDIA A100 80GB", "precision": "FP16", "k": 5, "mean_accepted_tokens": 2.3,
           "speedup_overall": 1.5, "source": "github:hemingkx/Spec-Bench"}
LCPP_ROW = {"id": "B-LCPP", "method": "draft model (llama-speculative)", "target": "Llama-3.1-8B-Instruct Q8_0",
            "draft": "Llama-3.2-1B-Instruct Q8_0", "hardware": "NVIDIA GeForce RTX 3060 12GB", "k": 5,
            "n_drafted": 700, "n_accept": 500, "tok_s_baseline": 30.0, "tok_s_spec": 50.0}
SLOW_ROW = {"id": "B-SLOW", "method": "draft model (LM Studio MLX engine)", "target": "Llama 3.1 8B Q4 MLX",
            "draft": "Llama 3.2 3B Q4 MLX", "hardware": "Apple M1 Pro 32GB", "tok_s_baseline": 40.0, "tok_s_spec": 20.0}
EAGLE_ROW = {"id": "B-EAGLE", "method": "EAGLE-2", "target": "Vicuna-7B-v1.3", "draft": "EAGLE head",
             "hardware": "NVIDIA A100 80GB", "speedup_overall": 2.0}
NGRAM_ROW = {"id": "B-NGRAM", "method": "n-gram (prompt lookup)", "target": "Llama3-70B", "draft": None,
             "hardware": "4x NVIDIA H100", "speedup_reported": "up to 2.8x"}
UNKNOWN_GPU_ROW = {**SPS_ROW, "id": "B-TPU", "hardware": "TPU-v9 pod"}
UNKNOWN_MODEL_ROW = {**LCPP_ROW, "id": "B-NOMODEL", "draft": "someone/Unheard-0.5B"}

_ARGS = {"target": "meta-llama/Llama-3.1-8B", "draft": "meta-llama/Llama-3.2-1B", "gpu": "rtx-4090", "gpus": 1,
         "engine": "hf", "precision": "bf16", "task": "chat"}


def _more(rid, compare, args=None, **extra):
    return {"id": rid, **extra, "specplan": {"expressible": True, "args": {**_ARGS, **(args or {})}, "acceptance": None,
                                             "compare": compare}}


MORE_ROWS = [
    _more("S-SPEED", {"speedup": 1.4}, {"k": 5}),
    _more("S-BEST-K", {"speedup": 1.5}),
    _more("S-UPTO", {"speedup": 3.0}, {"k": 8}, speedup_printed="up to x3"),
    _more("S-ABOUT1", {"speedup": None, "qualitative": "no significant speed-up"}),
    _more("S-R", {"r": 1.3}, {"k": 3, "engine": "llamacpp", "precision": "q8_0", "draft_precision": "q4_0"}),
    _more("S-ACC", {"speedup": 1.6}, {"k": 4}),
    _more("S-BADARG", {"speedup": 1.2}, {"k": 4, "not_a_flag": 3}),
    {"id": "S-OPT", "specplan": {"expressible": False, "reason": "OPT (model_type opt) is not an architecture"}},
]
MORE_ROWS[5]["specplan"]["acceptance"] = {"acceptance_rate": 0.6}


@pytest.fixture()
def files(tmp_path):
    measurements = tmp_path / "m.yaml"
    measurements.write_text(yaml.safe_dump({"A_decode_throughput": [DECODE_ROW], "B_speculative_decoding": [
        SPS_ROW, LCPP_ROW, SLOW_ROW, EAGLE_ROW, NGRAM_ROW, UNKNOWN_GPU_ROW, UNKNOWN_MODEL_ROW]}))
    more = tmp_path / "more.yaml"
    more.write_text(yaml.safe_dump({"rows": MORE_ROWS}))
    return measurements, more


@pytest.fixture()
def report(files):
    return validate(load_measurements(files[0]), load_speculative_more(files[1]))


def _every_row_accounted(report):
    checked = {c.row for c in report.checks} | {c.row for c in report.speculative}
    skipped = {s.row for s in report.skipped}
    assert not checked & skipped
    for ids in report.rows.values():
        assert set(ids) == {i for i in ids if i in checked or i in skipped}
    assert all(s.reason.strip() for s in report.skipped)


def test_synthetic_rows_are_checked_or_skipped_with_their_reason(report):
    _every_row_accounted(report)
    reasons = {s.row: s.reason for s in report.skipped}
    assert set(reasons) == {"B-EAGLE", "B-TPU", "B-NOMODEL", "S-BADARG", "S-OPT"}
    # issue 12: method rows map to estimate --method (planner.validation.methods); an EAGLE-2 row outside
    # Spec-Bench names no tree, and a dynamic tree of unstated shape is not priced
    assert reasons["B-EAGLE"].startswith("tree of unstated shape")
    assert "not in the catalogue" in reasons["B-TPU"] and "Unheard" in reasons["B-NOMODEL"]
    assert "not_a_flag" in reasons["S-BADARG"] and reasons["S-OPT"].startswith("OPT")
    assert {c.row for c in report.speculative} == {"B-SPS", "B-LCPP", "B-SLOW", "B-NGRAM", "S-SPEED", "S-BEST-K", "S-UPTO",
                                                   "S-ABOUT1", "S-R", "S-ACC"}


def test_rows_with_measured_acceptance_are_priced_twice(report):
    by_row = {c.row: c for c in report.speculative}
    for row in ("B-SPS", "B-LCPP", "S-ACC"):
        c = by_row[row]
        assert c.measured is not None and c.measured.alpha_source == "user" and c.prior.alpha_source == "prior"
        assert c.measured_error is not None and c.prior_error is not None
    # estimate takes llama.cpp's counts (issue 9 point 3): they go in as they are, through the draft loop
    assert "--drafted 700, --accepted 500" in by_row["B-LCPP"].acceptance_passed
    assert by_row["S-SPEED"].measured is None and by_row["S-SPEED"].prior.k == 5
    r_row = by_row["S-R"]
    assert r_row.case.measured_r == 1.3 and r_row.r_error is not None and r_row.prior_error is None
    assert r_row.roofline_r_error == pytest.approx((1.0 - 1.3) / 1.3)


def test_pure_roofline_prices_bytes_and_free_verification(report):
    c = next(c for c in report.speculative if c.row == "S-SPEED")
    assert 0 < c.prior.roofline_c < 1 and c.prior.roofline_speedup > 0
    # Same alpha and k, c = bytes ratio, r = 1: never below the modelled speedup's verify-free bound.
    from planner import speedup as sp
    assert c.prior.roofline_speedup == pytest.approx(float(sp.speedup(c.prior.alpha, c.prior.k, c.prior.roofline_c, 1.0)))


def test_every_speculative_row_goes_through_estimate(files, monkeypatch):
    seen: list[EstimateInputs] = []
    real = spec_mod.estimate

    def recording(inp):
        seen.append(inp)
        return real(inp)

    monkeypatch.setattr(spec_mod, "estimate", recording)
    report = validate(load_measurements(files[0]), load_speculative_more(files[1]))
    assert len(seen) == len(report.speculative) + sum(c.measured is not None for c in report.speculative)
    targets = {(i.fit.target, i.fit.gpu, i.k_given) for i in seen}
    assert ("meta-llama/Llama-3.1-8B", "rtx-4090", False) in targets  # S-BEST-K: no k, estimate's best k
    assert any(i.drafted == 700 and i.accepted == 500 for i in seen)


def test_summary_keys_and_per_engine_grouping(report):
    s = summarize(report)
    for key in ("decode_tokens_per_s", "speedup_prior_only", "speedup_measured_acceptance", "verify_ratio_r",
                "by_engine", "no_gain", "upper_bounds", "coverage", "targets", "targets_met"):
        assert key in s
    assert set(s["by_engine"]) == {c.engine for c in report.speculative} == {"hf", "llamacpp"}
    for block in s["by_engine"].values():
        assert set(block) == {"speedup_prior_only", "speedup_measured_acceptance", "verify_ratio_r"}
    hf_rows = [c for c in report.speculative if c.engine == "hf" and c.compared_speedup]
    assert s["by_engine"]["hf"]["speedup_prior_only"]["rows"] == len(hf_rows)
    # Upper bounds and qualitative rows stay out of the medians; both appear in their own lists.
    counted = s["speedup_prior_only"]["rows"]
    assert counted == sum(c.compared_speedup for c in report.speculative if c.method == "draft")
    assert [u["row"] for u in s["upper_bounds"]] == ["B-NGRAM", "S-UPTO"]
    kinds = {n["row"]: n["kind"] for n in s["no_gain"]}
    assert kinds == {"B-SLOW": "slowdown", "S-ABOUT1": "no gain"}
    assert [t["name"] for t in s["targets"]][-1].startswith("every measured slowdown (< 1.0x) predicted below 1.05")
    assert s["coverage"] == {MEASUREMENTS: {"rows": 8, "checked": 5, "skipped": 3},
                             SPECULATIVE_MORE: {"rows": 8, "checked": 6, "skipped": 2}}


def test_targets_missed_only_when_over_their_limits(report):
    loose = Targets(decode_median=100, prior_median=100, measured_median=100, r_median=100, no_gain_below=100)
    assert summarize(report, loose)["targets_met"]
    tight = summarize(report, Targets(decode_median=100, prior_median=0.0, measured_median=100, r_median=100,
                                      no_gain_below=100))
    assert not tight["targets_met"] and [t["met"] for t in tight["targets"]][1] is False


def test_a_target_without_rows_is_not_applicable(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"A_decode_throughput": [DECODE_ROW], "B_speculative_decoding": []}))
    s = summarize(validate(load_measurements(path)))
    assert all(t["met"] is None for t in s["targets"][1:])
    assert list(s["coverage"]) == [MEASUREMENTS]


def _cli(runner, *args):
    return runner.invoke(main, ["validate", *args, "--format", "json"])


def test_exit_codes(runner, files):
    m, more = (str(p) for p in files)
    loose = ["--max-median-error", "100", "--max-prior-error", "100", "--max-measured-error", "100",
             "--max-r-error", "100"]
    # B-SLOW, a measured slowdown (8B + 3B, Q4, M1 Pro), is predicted below 1.05x: llama.cpp's p-min loop
    # and the Metal kernel lines' per-row quantised verify (issue 9), so the no-gain target is met.
    alone = _cli(runner, "--measurements", m, *loose)
    assert alone.exit_code == 0 and json.loads(alone.stdout)["summary"]["targets"][-1]["met"] is True
    strict = _cli(runner, "--measurements", m, *loose[:-2], "--max-r-error", "100", "--max-measured-error", "0")
    assert strict.exit_code == 1
    data = json.loads(strict.stdout)
    assert not data["summary"]["targets_met"]
    decode_only = _cli(runner, "--measurements", _decode_only(files[0]), "--max-median-error", "100")
    assert decode_only.exit_code == 0 and json.loads(decode_only.stdout)["summary"]["targets_met"]
    assert _cli(runner, "--measurements", _decode_only(files[0]), "--max-median-error", "0").exit_code == 1
    both = _cli(runner, "--measurements", m, "--speculative", more, *loose)
    assert {r["row"] for r in json.loads(both.stdout)["speculative"]} >= {"S-SPEED", "B-SPS"}


def _decode_only(path):
    out = path.parent / "decode.yaml"
    out.write_text(yaml.safe_dump({"A_decode_throughput": [DECODE_ROW], "B_speculative_decoding": []}))
    return str(out)


@pytest.mark.parametrize("row, words", [
    ({"id": "S-1"}, "expressible"),
    ({"id": "S-1", "specplan": {"expressible": False}}, "reason"),
    ({"id": "S-1", "specplan": {"expressible": True, "args": {"target": "x"}, "compare": {}}}, "args.gpu"),
    ({"id": "S-1", "specplan": {"expressible": True, "args": {**_ARGS, "k": 0}, "compare": {}}}, "args.k"),
    ({"id": "S-1", "specplan": {"expressible": True, "args": _ARGS, "compare": {"speedup": -1}}}, "compare.speedup"),
])
def test_malformed_speculative_rows_are_one_line_errors(tmp_path, runner, row, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"rows": [row]}))
    with pytest.raises(SpecplanError, match=words):
        load_speculative_more(path)
    result = runner.invoke(main, ["validate", "--speculative", str(path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_measured_acceptance_conversions(monkeypatch):
    assert measured_acceptance_flags(MeasuredAcceptance(alpha=0.8), 5)[0] == {"alpha": 0.8}
    # estimate converts a mean accepted length through the engine's draft loop (issue 9 point 3)
    flags, how = measured_acceptance_flags(MeasuredAcceptance(mean_accepted_length=3.0), 4)
    assert flags == {"mean_accepted_length": 3.0} and "--mean-accepted-length 3" in how
    with pytest.raises(SpecplanError, match="k it was measured at"):
        measured_acceptance_flags(MeasuredAcceptance(mean_accepted_length=3.0), None)
    counts = MeasuredAcceptance(drafted=100, accepted=60, rounds=30)
    # estimate takes the counts (the draft-loop inputs): they are passed as they are
    assert measured_acceptance_flags(counts, 5)[0] == {"drafted": 100, "accepted": 60, "rounds": 30}
    monkeypatch.setattr(spec_mod, "_ESTIMATE_FIELDS", spec_mod._ESTIMATE_FIELDS - {"drafted", "accepted", "rounds"})
    assert measured_acceptance_flags(counts, 5)[0] == {"acceptance_rate": pytest.approx(0.6)}


def test_packaged_sets_every_row_checked_or_skipped():
    """Both public files: every row is a check or a skip with its reason; decode keeps its 263 figures."""
    report = validate()
    _every_row_accounted(report)
    more = load_speculative_more()["rows"]
    measurements = load_measurements()
    assert set(report.rows) == {MEASUREMENTS, SPECULATIVE_MORE}
    assert len(report.rows[SPECULATIVE_MORE]) == len(more)
    assert len(report.rows[MEASUREMENTS]) == sum(len(measurements[s]) for s in ("A_decode_throughput",
                                                                                "B_speculative_decoding"))
    assert len(report.of_kind("decode")) == 263
    reasons = {s.row: s.reason for s in report.skipped}
    for row in more:
        if not row["specplan"]["expressible"]:
            assert reasons[row["id"]] == row["specplan"]["reason"]
    for row in measurements["B_speculative_decoding"]:
        method = str(row.get("method")).lower()
        if any(w in method for w in ("eagle", "medusa", "mtp", "n-gram")) and row["id"] in reasons:
            assert next(x.method for x in report.skipped if x.row == row["id"])
    r_rows = [c for c in report.speculative if c.case.measured_r is not None]
    assert {c.row for c in r_rows} == {"S2-LC5625-R4", "S2-LC5625-R8", "S2-LC5625-R9"}


_ODD = [None, True, 0, -1, 1, 3, 0.5, 1e308, 10**12, 10**400, "", "abc", "up to 0x", "up to 1.5x", "0x slowdown",
        "2x slowdown", "up to .x", [], {}, float("nan"), float("inf"), "x\ny"]
_B_FIELDS = ["method", "target", "draft", "hardware", "engine", "precision", "k", "batch_size", "n_drafted", "n_accept",
             "n_rounds", "acceptance_rate", "alpha", "mean_accepted_tokens", "tok_s_spec", "tok_s_baseline",
             "speedup_overall", "speedup_reported", "prompt_tokens", "output_tokens", "task", "benchmark"]


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(_B_FIELDS), st.sampled_from(_ODD), max_size=3))
def test_odd_section_b_rows_are_priced_skipped_or_refused_in_one_line(changes):
    row = {**LCPP_ROW, **changes}
    try:
        doc = load_measurements_from({"A_decode_throughput": [], "B_speculative_decoding": [row]})
    except SpecplanError as exc:
        assert "\n" not in str(exc)
        return
    report = validate(doc)
    _every_row_accounted(report)
    for c in report.speculative:
        assert c.prior.speedup > 0 and (c.case.measured_speedup is None or c.case.measured_speedup > 0)


def load_measurements_from(doc):
    """load_measurements' row checks on an in-memory document (through a YAML round trip like a file)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.yaml"
        path.write_text(yaml.safe_dump(doc))
        return load_measurements(path)


def test_packaged_method_rows_are_priced_per_method_with_their_trees():
    """Issue 12 point 6: heads and lookups priced through estimate --method, trees at the shape they ran."""
    report = validate()
    by_row = {c.row: c for c in report.speculative}
    sgl = by_row["B-SGL-02"]  # SGLang docs EAGLE-3: the page's default tree (5, 4, 8)
    assert sgl.method == "eagle3" and sgl.engine == "sglang"
    assert {k: sgl.case.flags[k] for k in ("num_steps", "topk", "num_draft_tokens")} == {
        "num_steps": 5, "topk": 4, "num_draft_tokens": 8}
    spec_bench = by_row["B-SBA100-7B-01"]  # Spec-Bench EAGLE: EAGLE's own code with its static tree
    assert spec_bench.engine == "eagleref" and spec_bench.case.flags["tree"] == "mc_sim_7b_63"
    assert spec_bench.acceptance_passed == "--mean-accepted-length 3.61"
    s = summarize(report)
    for method in ("eagle", "ngram"):
        block = s["by_method"][method]
        assert block["speedup_measured_acceptance"]["rows"] >= 4 and block["speedup_prior_only"]["rows"] >= 4
    targets = {t["name"]: t for t in s["targets"]}
    # One stream (batch 1) holds issue 12's limits for these; the batch sweeps are issue 13's (README: the misses).
    for method in ("eagle", "eagle3", "mtp", "ngram"):
        assert targets[f"{method} prior-only speedup median |error|"]["met"] is True
    assert targets["eagle speedup with published acceptance median |error|"]["met"] is True
    # Batch > 1 is its own block over every method, and misses issue 13's limit today (the README says by how much).
    batched = [c for c in report.speculative if c.batched and c.compared_speedup]
    assert s["batched"]["speedup_prior_only"]["rows"] == len(batched) >= 60
    assert targets["batched (batch > 1) prior-only speedup median |error|"]["met"] is False
    single = [c for c in report.speculative if c.method == "draft" and not c.batched and c.compared_speedup]
    assert s["speedup_prior_only"]["rows"] == len(single)
    assert s["batched_by_method"]["draft"]["priced"] == sum(c.batched and c.method == "draft" for c in report.speculative)
    # a row's own SGLang tree field (SGLang PR 4716: --speculative-num-steps 8 --eagle-topk 8 --num-draft-tokens 64)
    tree_row = by_row["B-SGL-E3-70B-01"]
    assert {k: tree_row.case.flags[k] for k in ("num_steps", "topk", "num_draft_tokens")} == {
        "num_steps": 8, "topk": 8, "num_draft_tokens": 64}
    assert tree_row.acceptance_passed == "--mean-accepted-length 5.88"
    # EAGLE-3 paper Table 3 ran a chain of 3 without a tree; TensorRT-LLM's "MTP 2" is a chain of 2 MTP steps
    chain = by_row["B-E3P-T3-E3-BS64"]
    assert chain.method == "eagle3" and chain.case.flags["k"] == 3 and chain.case.flags["batch"] == 64
    assert "num_steps" not in chain.case.flags
    mtp = by_row["B-TRT-MTP-02"]
    assert (mtp.method, mtp.engine, mtp.case.flags["k"]) == ("mtp", "trtllm", 2)
    assert mtp.acceptance_passed == "--mean-accepted-length 2.58"


def test_validate_yaml_output_holds_the_json_values(runner):
    """--format yaml of the packaged sets (numpy scalars in the per-method rows once broke the safe dumper)."""
    as_yaml = runner.invoke(main, ["validate", "--format", "yaml"])
    as_json = runner.invoke(main, ["validate", "--format", "json"])
    assert as_yaml.exit_code == as_json.exit_code and as_json.exit_code in (0, 1), as_yaml.output[-400:]
    assert yaml.safe_load(as_yaml.stdout)["summary"]["by_method"] == json.loads(as_json.stdout)["summary"]["by_method"]


@pytest.mark.parametrize("words, method", [
    ("MTP Eagle (one MTP module run nextn times)", "mtp"),  # TensorRT-LLM's name for its DeepSeek MTP path
    ("MTP (NextN)", "mtp"), ("EAGLE-3 (chain, no tree)", "eagle3"), ("EAGLE-2", "eagle"),
    ("n-gram (TensorRT-LLM NGram)", "ngram"),
])
def test_a_rows_method_words_name_its_method(words, method):
    assert method_of_row({"method": words}) == (method, "")
