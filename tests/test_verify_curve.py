"""The verify curve r(n): its monotone fit (properties, saved real llama-bench output) and its use in planning."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.calibration.llamacpp_probe import parse_bench_json
from planner.calibration.schema import (
    CalibrationFile,
    DeviceIdentity,
    FittedTiming,
    FittedVerify,
    ModelIdentity,
    read_calibration,
    write_calibration,
)
from planner.calibration.verify_curve import fit_verify_curve, fit_verify_curves, monotone_fit, verify_ratio
from planner.errors import SpecplanError
from planner.plan import EstimateInputs, RecommendInputs, estimate, recommend
from planner.requests import FitInputs

SAVED = Path(__file__).parent / "data" / "llamabench_tiny_target.json"

_times = st.floats(min_value=1e-5, max_value=10.0, allow_nan=False, allow_infinity=False)


@given(st.lists(_times, min_size=2, max_size=17))
def test_any_positive_times_give_ratios_from_one_that_never_decrease(times: list[float]) -> None:
    ratio, resid = fit_verify_curve(list(range(1, len(times) + 1)), times)
    assert ratio[0] == 1.0 and all(r >= 1.0 for r in ratio)
    assert all(b >= a for a, b in zip(ratio, ratio[1:]))
    assert len(resid) == len(times)


@settings(max_examples=200)
@given(st.floats(1e-5, 1.0), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=16))
def test_a_monotone_curve_is_recovered_exactly(t1: float, steps: list[float]) -> None:
    times = [t1]
    for s in steps:
        times.append(times[-1] + s * t1)  # non-decreasing by construction
    ratio, resid = fit_verify_curve(list(range(1, len(times) + 1)), times)
    assert ratio == pytest.approx([t / t1 for t in times], rel=1e-12)
    assert max(abs(r) for r in resid) == pytest.approx(0.0, abs=1e-12)


def test_a_dip_is_pooled_with_its_neighbour() -> None:
    assert monotone_fit([1.0, 3.0, 2.0, 4.0]) == [1.0, 2.5, 2.5, 4.0]
    ratio, resid = fit_verify_curve([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    assert ratio == [1.0, 2.5, 2.5, 4.0] and resid[1] == pytest.approx(1 / 6)


def test_a_slow_first_pass_is_pooled_not_below_one() -> None:
    ratio, _ = fit_verify_curve([1, 2, 3], [2.0, 1.0, 3.0])
    assert ratio == [1.0, 1.0, 2.0]


@pytest.mark.parametrize("n, t", [([2, 3], [1.0, 2.0]), ([1], [1.0]), ([1, 3, 2], [1, 2, 3]), ([1, 2], [1.0, 0.0]),
                                  ([1, 2], [1.0, float("nan")])])
def test_bad_curves_are_refused_in_one_line(n, t) -> None:
    with pytest.raises(SpecplanError) as err:
        fit_verify_curve(n, t)
    assert "\n" not in str(err.value)


def test_curves_from_the_saved_real_llama_bench_output() -> None:
    pp = parse_bench_json(SAVED.read_text(encoding="utf-8"), "target", kinds=("pp",))
    curves = {c.context: c for c in fit_verify_curves(pp, "llama-bench pp")}
    assert set(curves) == {0, 128}
    deep, flat = curves[128], curves[0]
    assert deep.new_tokens == [1, 2, 3, 4, 5]
    # the fastest of each test's 2 repeats: pp1..pp5 at depth 128 0.712, 1.749, 2.031, 2.721, 2.778 ms, already
    # monotone (the medians were not: one pp2 repeat at depth 0 took 4.5 ms against 1.7 ms)
    assert deep.ratio == pytest.approx([1.0, 2.456, 2.853, 3.822, 3.902], abs=0.005)
    assert deep.ratio == pytest.approx(deep.measured_ratio) and deep.max_rel_residual == pytest.approx(0.0, abs=1e-12)
    assert flat.ratio[1] == pytest.approx(1.738 / 0.561, abs=0.01)  # pp2 ~ 3 x pp1 on this CPU: not memory-bound
    assert all(b >= a for a, b in zip(flat.ratio, flat.ratio[1:]))


def test_the_record_refuses_a_decreasing_or_misaligned_curve() -> None:
    base = dict(context=0, new_tokens=[1, 2, 3], measured_ratio=[1, 2, 3], max_rel_residual=0, source="x")
    with pytest.raises(ValueError):
        FittedVerify(**{**base, "ratio": [1.0, 2.0, 1.5]})
    with pytest.raises(ValueError):
        FittedVerify(**{**base, "ratio": [1.0, 2.0]})
    with pytest.raises(ValueError):
        FittedVerify(**{**base, "new_tokens": [2, 3, 4], "ratio": [1.0, 2.0, 3.0]})


def test_interpolation_inside_and_model_shape_beyond() -> None:
    curve = FittedVerify(context=0, new_tokens=[1, 2, 4], ratio=[1.0, 2.0, 3.0], measured_ratio=[1, 2, 3],
                         max_rel_residual=0, source="x")
    model = lambda n: 1.0 + 0.1 * (np.asarray(n, dtype=float) - 1)  # noqa: E731
    got = verify_ratio(curve, np.array([1, 2, 3, 4, 6]), model)
    # n = 3: halfway between 2.0 and 3.0; n = 6: 3.0 x model(6) / model(4) = 3.0 x 1.5 / 1.3
    assert got == pytest.approx([1.0, 2.0, 2.5, 3.0, 3.0 * 1.5 / 1.3])


# --- planning with a fitted curve -------------------------------------------------------------------


def _calibration(tmp_path: Path, engine: str | None = None, curve: bool = True, device: str = "h100-sxm") -> str:
    cal = CalibrationFile(
        source="probe", device=DeviceIdentity(name=device, catalog_id=device), engine=engine,
        target=ModelIdentity(id="meta-llama/Llama-3.1-8B"), draft=ModelIdentity(id="meta-llama/Llama-3.2-1B"),
        fitted_timing=[FittedTiming(role="target", eta_mem=0.5, overhead_s=0.002, residual_rms_s=1e-4,
                                    max_rel_residual=0.02, points=8),
                       FittedTiming(role="draft", eta_mem=0.4, overhead_s=0.0015, residual_rms_s=1e-4,
                                    max_rel_residual=0.03, points=8)],
        fitted_verify=[FittedVerify(context=1024, new_tokens=[1, 2, 3, 4, 5], ratio=[1.0, 1.6, 2.2, 2.8, 3.4],
                                    measured_ratio=[1.0, 1.6, 2.2, 2.8, 3.4], max_rel_residual=0.0,
                                    source="synthetic")] if curve else [],
    )
    path = tmp_path / f"cal-{engine}-{curve}-{device}.yaml"
    write_calibration(cal, path)
    return str(path)


def _est(path: str | None, k: int = 4, gpu: str = "h100-sxm", engine: str | None = None):
    fit = FitInputs(target="llama-3.1-8b", draft="llama-3.2-1b", gpu=gpu, k=k, engine=engine)
    return estimate(EstimateInputs(fit, k_given=True, calibration=path))


def test_estimate_prices_verify_with_the_fitted_curve(tmp_path: Path) -> None:
    with_curve = _est(_calibration(tmp_path))
    without = _est(_calibration(tmp_path, curve=False))
    t = float(with_curve.prices.t_target_s)
    assert float(with_curve.prices.t_target_s) == pytest.approx(float(without.prices.t_target_s))
    assert float(with_curve.prices.r) == pytest.approx(3.4)  # r(k + 1 = 5), measured
    assert float(with_curve.prices.t_verify_s) == pytest.approx(t * 3.4)
    assert float(without.prices.r) < 2.0  # the cost model: a memory-bound verify on an H100
    assert with_curve.speedup_high < without.speedup_high
    figure = with_curve.calibration["figures"]["t_verify_ms"]
    assert figure["source"] == "fitted r(n)" and figure["calibrated"] == pytest.approx(t * 3.4 * 1000, rel=1e-4)
    assert not any("extrapolated" in w for w in with_curve.warnings)


def test_beyond_the_measured_n_it_extrapolates_and_says_so(tmp_path: Path) -> None:
    est = _est(_calibration(tmp_path), k=8)
    assert float(est.prices.r) >= 3.4
    assert any("measured up to 5 tokens" in w and "r(9) is extrapolated" in w for w in est.warnings)


@pytest.mark.parametrize("kw, est_kw", [({"device": "a100-sxm-80gb"}, {}), ({"engine": "vllm"}, {"engine": "sglang"})])
def test_another_device_or_engine_keeps_the_cost_models_verify(tmp_path: Path, kw, est_kw) -> None:
    plain = _est(None, **est_kw)
    other = _est(_calibration(tmp_path, **kw), **est_kw)
    assert float(other.prices.t_verify_s) == pytest.approx(float(plain.prices.t_verify_s))
    assert float(other.prices.r) == pytest.approx(float(plain.prices.r))


def test_same_engine_applies(tmp_path: Path) -> None:
    est = _est(_calibration(tmp_path, engine="vllm"), engine="vllm")
    assert float(est.prices.r) == pytest.approx(3.4)


def test_recommend_prices_the_calibrated_pair_with_the_curve(tmp_path: Path) -> None:
    def rows(path: str | None):
        rec = recommend(RecommendInputs(FitInputs(target="llama-3.1-8b", gpu="h100-sxm"), calibration=path, top=50))
        return {(c.draft, c.draft_precision): c for c in rec.candidates if c.draft}

    plain, cal = rows(_calibration(tmp_path, curve=False)), rows(_calibration(tmp_path))
    key = next(k for k in cal if k[0] == "meta-llama/Llama-3.2-1B")
    assert cal[key].r > plain[key].r  # the measured curve is steeper than the H100 cost model's
    other = next(k for k in cal if k[0] != "meta-llama/Llama-3.2-1B")
    assert cal[other].r == pytest.approx(plain[other].r)  # another pair: the calibration's timings do not apply


def test_a_file_without_the_curve_still_reads(tmp_path: Path) -> None:
    path = Path(_calibration(tmp_path, curve=False))
    text = path.read_text(encoding="utf-8").replace("fitted_verify: []\n", "")
    path.write_text(text, encoding="utf-8")
    assert "fitted_verify" not in text and read_calibration(path).fitted_verify == []


def test_partial_hook_matches_the_pure_function() -> None:
    curve = FittedVerify(context=0, new_tokens=[1, 2], ratio=[1.0, 2.0], measured_ratio=[1, 2], max_rel_residual=0,
                         source="x")
    hook = partial(verify_ratio, curve)
    assert hook(np.array([2]), lambda n: n * 1.0) == pytest.approx([2.0])


def test_the_report_curves_use_the_estimates_calibrated_verify(tmp_path: Path) -> None:
    from planner.outputs.report import _curves

    with_curve, without = _est(_calibration(tmp_path)), _est(_calibration(tmp_path, curve=False))
    assert with_curve.verify_ratio is not None and without.verify_ratio is None
    line = _curves(with_curve, None)["lines"][1]
    assert line[3] == pytest.approx(float(with_curve.prices.speedup), rel=1e-6)  # k = 4: the estimate's own figure
    assert line[3] < _curves(without, None)["lines"][1][3]


def test_measured_decode_is_llama_benchs_tg_not_pp1() -> None:
    from planner.calibration.apply import AppliedCalibration, measured_time_s

    points = parse_bench_json(SAVED.read_text(encoding="utf-8"), "target")
    applied = AppliedCalibration("c.yaml", None, None, None, tuple(points), ())
    tg = next(p for p in points if p.bench_test == "tg" and p.context == 128)
    assert measured_time_s(applied, "target", 1, 128, 1) == pytest.approx(tg.median_s)
    pp5 = next(p for p in points if p.bench_test == "pp" and p.context == 128 and p.new_tokens == 5)
    assert measured_time_s(applied, "target", 1, 128, 5) == pytest.approx(pp5.median_s)
