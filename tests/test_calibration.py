"""Calibration on CPU: tiny random-weight Llama and Qwen models, fitting, partial files, re-planning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from planner.calibration.fitting import fit_acceptance, fit_timings, per_position_acceptance
from planner.calibration.schema import (
    CalibrationFile,
    DeviceIdentity,
    FittedAcceptance,
    FittedTiming,
    ModelIdentity,
    RoundsRecord,
    TimingPoint,
    read_calibration,
    write_calibration,
)
from planner.catalog.lookup import find_gpu, find_model
from planner.catalog.precisions import kv_format, weight_format
from planner.cli import main
from planner.costmodel import model_profile
from planner.errors import SpecplanError
from planner.plan import EstimateInputs, RecommendInputs, estimate, recommend
from planner.requests import FitInputs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from planner.calibration import probe as pr  # noqa: E402  (needs torch)
from planner.calibration import passes  # noqa: E402


def _save(model_cls, config, folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model_cls(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny Llama-shaped target, the same weights as a draft, another init, and a Qwen2-shaped pair."""
    root = tmp_path_factory.mktemp("tiny")
    llama = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    qwen = transformers.Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return {
        "target": _save(transformers.LlamaForCausalLM, llama, root / "target", 0),
        "same": _save(transformers.LlamaForCausalLM, llama, root / "same", 0),
        "other": _save(transformers.LlamaForCausalLM, llama, root / "other", 1),
        "qwen_target": _save(transformers.Qwen2ForCausalLM, qwen, root / "qwen_t", 2),
        "qwen_draft": _save(transformers.Qwen2ForCausalLM, qwen, root / "qwen_d", 3),
    }


class _Clock:
    """A probe clock that advances by ``tick`` seconds each time it is read (0: time stands still)."""

    def __init__(self, tick: float = 0.0) -> None:
        self.tick, self.now, self.reads = tick, 0.0, 0

    def __call__(self) -> float:
        self.now += self.tick
        self.reads += 1
        return self.now


def _cfg(target, draft, **kw) -> pr.ProbeConfig:
    # a frozen clock: the budget never runs out, however loaded the machine is
    base = dict(target=str(target), draft=str(draft), budget_s=20, k_max=4, batch_sizes=(1, 2), contexts=(8, 32),
                max_new_tokens=16, temperature=0.8, prompts=pr.BUILTIN_PROMPTS[:3], clock=_Clock())
    base.update(kw)
    return pr.ProbeConfig(**base)


# --- the probe ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [("target", "other"), ("qwen_target", "qwen_draft")])
def test_timing_grid_produces_a_valid_file(tiny, tmp_path, pair):
    out = tmp_path / "cal.yaml"
    cal = pr.run_probe(_cfg(tiny[pair[0]], tiny[pair[1]]), out)
    back = read_calibration(out)
    assert back == cal and not cal.partial
    shapes = {(t.role, t.batch, t.context, t.new_tokens) for t in cal.timings}
    assert ("target", 1, 8, 1) in shapes and ("draft", 2, 32, 1) in shapes
    assert {n for r, _, _, n in shapes if r == "target"} == {1, 2, 3, 4, 5}  # decode + verify n = 2..k_max+1
    assert all(len(t.seconds) == 5 and min(t.seconds) > 0 for t in cal.timings)
    assert {r.mode for r in cal.rounds} == {"greedy", "sampling"}
    assert cal.device.backend == "cpu"
    # the verify curve r(n) from the same time_pass shapes: one per (batch, context), n = 1..k_max+1
    assert {(c.batch, c.context) for c in cal.fitted_verify} == {(1, 8), (1, 32), (2, 8), (2, 32)}
    assert all(c.new_tokens == [1, 2, 3, 4, 5] and c.ratio[0] == 1.0 for c in cal.fitted_verify)


def test_identical_draft_is_always_accepted_under_greedy(tiny):
    target = pr.load_model(str(tiny["target"]), _cfg(tiny["target"], tiny["same"]), torch, transformers, torch.device("cpu"))
    draft = pr.load_model(str(tiny["same"]), _cfg(tiny["target"], tiny["same"]), torch, transformers, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    rounds = list(pr.generate_rounds(target, draft, [1, 2, 3, 4], 4, 0.0, 40, torch, torch.device("cpu"), gen))
    assert rounds and all(a == 4 for a, _ in rounds)
    fitted = fit_acceptance(RoundsRecord(mode="greedy", temperature=0, k=4, accepted=[a for a, _ in rounds],
                                         proposed=[k for _, k in rounds]))
    assert fitted.alpha == 1.0


def test_independent_draft_has_low_greedy_alpha(tiny, tmp_path):
    cal = pr.run_probe(_cfg(tiny["target"], tiny["other"], temperature=0.0), tmp_path / "c.yaml")
    greedy = next(a for a in cal.fitted_acceptance if a.mode == "greedy")
    assert greedy.alpha < 0.3 and greedy.alpha_low <= greedy.alpha <= greedy.alpha_high


def test_greedy_output_equals_target_alone(tiny):
    """Speculation must not change what greedy decoding produces."""
    dev = torch.device("cpu")
    cfg = _cfg(tiny["target"], tiny["other"])
    target, draft = (pr.load_model(str(tiny[n]), cfg, torch, transformers, dev) for n in ("target", "other"))
    stream = passes.Stream(ids=[5, 6, 7])
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        while len(stream.ids) < 3 + 20:
            pr.speculative_round(target, draft, stream, 3, 0.0, torch, dev, gen)
        plain = target.model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=len(stream.ids) - 3, do_sample=False)
    assert stream.ids == plain[0].tolist()


def test_sampled_tokens_follow_the_target_distribution(tiny):
    """Rejection sampling is lossless: the first emitted token is distributed as the target's p."""
    from scipy.stats import chisquare

    dev = torch.device("cpu")
    vocab = 8
    conf = transformers.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    torch.manual_seed(10)
    t_model = transformers.LlamaForCausalLM(conf).eval()
    torch.manual_seed(11)
    d_model = transformers.LlamaForCausalLM(conf).eval()
    # sharpen both so p and q differ clearly (small random models are nearly uniform)
    for m in (t_model, d_model):
        m.lm_head.weight.data *= 40
    target = pr.LoadedModel(t_model, ModelIdentity(id="t"), None, vocab)
    draft = pr.LoadedModel(d_model, ModelIdentity(id="d"), None, vocab)
    prefix = [1, 2, 3]
    with torch.inference_mode():
        p = torch.softmax(t_model(torch.tensor([prefix])).logits[0, -1].double(), -1).numpy()
        q = torch.softmax(d_model(torch.tensor([prefix])).logits[0, -1].double(), -1).numpy()
    assert 0.2 < np.minimum(p, q).sum() < 0.9  # draft differs from target: rejections happen
    gen = torch.Generator().manual_seed(123)
    draws = 1500
    counts = np.zeros(vocab)
    with torch.inference_mode():
        for _ in range(draws):
            stream = passes.Stream(ids=list(prefix))
            _, committed = pr.speculative_round(target, draft, stream, 2, 1.0, torch, dev, gen)
            counts[committed[0]] += 1
    expected = p / p.sum() * draws
    keep = expected >= 5
    observed, expected = counts[keep], expected[keep]
    if (~keep).any():  # pool the rare tokens into one bin
        observed = np.append(observed, counts[~keep].sum())
        expected = np.append(expected, (p / p.sum() * draws)[~keep].sum())
    stat = chisquare(observed, expected * observed.sum() / expected.sum())
    assert stat.pvalue > 1e-3


def test_interrupt_writes_a_partial_file(tiny, tmp_path):
    calls = {"n": 0}

    def interrupt_after_five():
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt

    out = tmp_path / "partial.yaml"
    cal = pr.run_probe(_cfg(tiny["target"], tiny["other"], on_step=interrupt_after_five), out)
    back = read_calibration(out)
    assert back.partial and "interrupted" in back.partial_reason
    assert len(back.timings) == 5 and back.rounds == [] and cal == back
    assert [p.name for p in tmp_path.iterdir()] == ["partial.yaml"]  # no temporary file left behind


def test_out_of_memory_writes_a_partial_file(tiny, tmp_path):
    def oom():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    cal = pr.run_probe(_cfg(tiny["target"], tiny["other"], on_step=oom), tmp_path / "oom.yaml")
    assert cal.partial and cal.partial_reason.startswith("out of memory")


def test_catalogue_name_needs_random_weights(tiny):
    with pytest.raises(SpecplanError, match="--random-weights"):
        pr.load_model("llama-3.2-1b", _cfg("llama-3.2-1b", tiny["other"]), torch, transformers, torch.device("cpu"))


def test_random_weights_from_a_folder_config(tiny, tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text((tiny["target"] / "config.json").read_text())
    m = pr.load_model(str(tmp_path / "cfg"), _cfg(tmp_path / "cfg", tiny["other"], random_weights=True), torch,
                      transformers, torch.device("cpu"))
    assert m.identity.total_params > 0 and m.vocab_size == 64


def test_prompts_file_formats(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "a"}\n{"text": "b"}\n')
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert pr.read_prompts(str(tmp_path / "p.jsonl")) == ("a", "b")
    assert pr.read_prompts(str(tmp_path / "p.txt")) == ("one", "two")
    (tmp_path / "bad.jsonl").write_text('{"prompt": 3}\n')
    with pytest.raises(SpecplanError, match="line 1: field prompt"):
        pr.read_prompts(str(tmp_path / "bad.jsonl"))


def test_budget_stops_the_grid_and_the_rounds_in_time(tiny, tmp_path):
    """Each clock read costs 1 s: the probe must stop inside its budget, saying where it stopped."""
    clock = _Clock(tick=1.0)
    cal = pr.run_probe(_cfg(tiny["target"], tiny["other"], budget_s=30, clock=clock), tmp_path / "b.yaml")
    assert any("timing grid stopped by the budget" in n for n in cal.notes)
    assert len(cal.timings) < len(pr._timing_grid(_cfg(tiny["target"], tiny["other"])))
    assert any("rounds stopped by the budget" in n for n in cal.notes)
    assert clock.now <= 30 + 2  # the last step may read the clock once or twice past the deadline


def test_probe_command(tiny, tmp_path, runner, monkeypatch):
    monkeypatch.setattr(pr, "monotonic_clock", _Clock())
    out = tmp_path / "cli.yaml"
    args = ["probe", "--target", str(tiny["target"]), "--draft", str(tiny["other"]), "--budget-s", "10",
            "--k-max", "3", "--batch-sizes", "1", "--contexts", "8", "--max-new-tokens", "8", "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "greedy: alpha" in result.stdout and read_calibration(out).source == "probe"
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.stderr


def test_probe_without_torch_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(pr.ProbeUnavailable, match=r"specplan\[probe\]") as err:
        pr.require_torch()
    assert err.value.exit_code == 3


# --- fitting --------------------------------------------------------------------------------------------


def test_timing_fit_recovers_known_efficiency_and_overheads():
    fmt, kv = weight_format("bf16"), kv_format("fp16")
    profiles = {"target": model_profile(find_model("llama-3.1-8b").spec, fmt, kv),
                "draft": model_profile(find_model("llama-3.2-1b").spec, fmt, kv)}
    bw, eta, overhead = 3350e9, 0.72, {"target": 0.0021, "draft": 0.0009}
    points = []
    for role, prof in profiles.items():
        for b in (1, 4, 16):
            for ctx in (128, 2048):
                t = (prof.dense_weight_bytes + b * (ctx + 1) * prof.kv_bytes_per_token_full) / (bw * eta) + overhead[role]
                points.append(TimingPoint(role=role, batch=b, context=ctx, new_tokens=1, seconds=[t, t * 1.001, t * 0.999]))
    fitted = {f.role: f for f in fit_timings(points, profiles, bw)}
    for role in profiles:
        assert fitted[role].eta_mem == pytest.approx(eta, rel=0.01)
        assert fitted[role].overhead_s == pytest.approx(overhead[role], rel=0.03)
        assert fitted[role].max_rel_residual < 0.01 and fitted[role].points == 6


def _geometric_rounds(alpha, k, n, rng):
    accepted = np.minimum(rng.geometric(1 - alpha, size=n) - 1, k)
    return RoundsRecord(mode="greedy", temperature=0, k=k, accepted=accepted.tolist(), proposed=[k] * n)


def test_mle_interval_and_geometric_fit_on_simulated_rounds():
    rng = np.random.default_rng(7)
    fitted = fit_acceptance(_geometric_rounds(0.7, 5, 4000, rng))
    assert fitted.alpha_low <= 0.7 <= fitted.alpha_high and fitted.alpha == pytest.approx(0.7, abs=0.02)
    assert fitted.geometric_p_value > 0.001 and not fitted.decays_with_position
    assert all(x == pytest.approx(0.7, abs=0.05) for x in fitted.per_position)


def test_decaying_acceptance_is_detected():
    rng = np.random.default_rng(3)
    rates = [0.9, 0.75, 0.55, 0.4, 0.3]
    accepted = []
    for _ in range(4000):
        a = 0
        while a < 5 and rng.random() < rates[a]:
            a += 1
        accepted.append(a)
    rec = RoundsRecord(mode="greedy", temperature=0, k=5, accepted=accepted, proposed=[5] * 4000)
    fitted = fit_acceptance(rec)
    assert fitted.decays_with_position and fitted.geometric_p_value < 0.05
    assert per_position_acceptance(rec) == pytest.approx(rates, abs=0.05)


# --- re-planning ----------------------------------------------------------------------------------------


def _catalogue_calibration(tmp_path, device="h100-sxm", draft="meta-llama/Llama-3.2-1B") -> str:
    cal = CalibrationFile(
        source="probe", device=DeviceIdentity(name="NVIDIA H100 80GB HBM3", catalog_id=device),
        target=ModelIdentity(id="meta-llama/Llama-3.1-8B"), draft=ModelIdentity(id=draft),
        timings=[TimingPoint(role="target", batch=1, context=2048, new_tokens=1, seconds=[0.0105])],
        fitted_timing=[FittedTiming(role="target", eta_mem=0.5, overhead_s=0.002, residual_rms_s=1e-4,
                                    max_rel_residual=0.02, points=8),
                       FittedTiming(role="draft", eta_mem=0.4, overhead_s=0.0015, residual_rms_s=1e-4,
                                    max_rel_residual=0.03, points=8)],
        fitted_acceptance=[FittedAcceptance(mode="greedy", alpha=0.83, alpha_low=0.80, alpha_high=0.86, k=5, rounds=900)],
    )
    path = tmp_path / "cal.yaml"
    write_calibration(cal, path)
    return str(path)


def _est(path, gpu="h100-sxm"):
    return estimate(EstimateInputs(FitInputs(target="llama-3.1-8b", draft="llama-3.2-1b", gpu=gpu), calibration=path))


def test_calibration_replaces_alpha_and_timing_on_its_device(tmp_path):
    path = _catalogue_calibration(tmp_path)
    plain = _est(None)
    cal = _est(path)
    assert cal.alpha.source == "calibration" and cal.alpha.mid == 0.83
    assert (cal.speedup_low, cal.speedup_high) != (float(cal.prices.speedup),) * 2
    figures = cal.calibration["figures"]
    assert figures["t_target_ms"]["source"] == "fitted"
    assert figures["t_target_ms"]["calibrated"] > figures["t_target_ms"]["catalogue"]  # eta 0.5 < default
    assert figures["t_target_ms"]["measured"] == pytest.approx(10.5)
    assert figures["t_target_ms"]["catalogue"] == pytest.approx(float(plain.prices.t_target_s) * 1000, rel=1e-6)
    assert figures["alpha"] == {"prior": pytest.approx(plain.alpha.mid, abs=1e-4), "used": 0.83, "source": "calibration"}


def test_calibration_from_another_device_keeps_catalogue_timing(tmp_path):
    cal = _est(_catalogue_calibration(tmp_path), gpu="a100-sxm-80gb")
    assert cal.alpha.source == "calibration"  # acceptance belongs to the pair, not the device
    assert cal.calibration["figures"]["t_target_ms"]["source"] == "catalogue"
    assert any("not a100-sxm-80gb" in w for w in cal.warnings)


def test_calibration_of_another_pair_is_not_applied(tmp_path):
    cal = _est(_catalogue_calibration(tmp_path, draft="meta-llama/Llama-3.2-3B"))
    assert cal.alpha.source == "prior" and any("not this pair" in w for w in cal.warnings)


def test_recommend_uses_the_calibrated_draft(tmp_path):
    rows = recommend(RecommendInputs(FitInputs(target="llama-3.1-8b", gpu="h100-sxm"),
                                     calibration=_catalogue_calibration(tmp_path), top=50)).candidates
    sources = {(r.draft, r.alpha_source) for r in rows if r.draft}
    assert ("meta-llama/Llama-3.2-1B", "calibration") in sources
    assert ("meta-llama/Llama-3.2-3B", "prior") in sources


def test_estimate_command_shows_calibration_side_by_side(tmp_path, runner):
    path = _catalogue_calibration(tmp_path)
    args = ["estimate", "--target", "llama-3.1-8b", "--draft", "llama-3.2-1b", "--gpu", "h100-sxm", "--calibration", path]
    table = runner.invoke(main, args)
    assert table.exit_code == 0 and "calibrated" in table.stdout and "measured" in table.stdout
    data = json.loads(runner.invoke(main, [*args, "--format", "json"]).stdout)
    assert data["alpha_source"] == "calibration" and data["calibration"]["timing_applied"] is True


def test_malformed_calibration_file_names_file_and_field(tmp_path, runner):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nsource: probe\ntarget: {id: x}\nrounds: [{mode: greedy, temperature: 0, k: 0, accepted: [], proposed: []}]\n")
    result = runner.invoke(main, ["estimate", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--calibration", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.stderr and "rounds.0.k" in result.stderr
    bad.write_text("schema_version: 7\n")
    result = runner.invoke(main, ["estimate", "--target", "llama-3.1-8b", "--gpu", "h100-sxm", "--calibration", str(bad)])
    assert result.exit_code == 2 and "schema_version" in result.stderr


def test_local_gpu_without_driver_exits_3(runner):
    result = runner.invoke(main, ["fit", "--target", "llama-3.1-8b", "--gpu", "local"])
    assert result.exit_code == 3 and "Traceback" not in result.output
    # Issue 10: plain detect also reports the host CPU and exits 0; --require-gpu keeps exit 3.
    detect = runner.invoke(main, ["detect", "--require-gpu"])
    assert detect.exit_code == 3
    assert "no NVIDIA GPU" in detect.stderr or "nvidia-ml-py" in detect.stderr


def test_gpu_spec_lookup_is_unchanged():
    assert find_gpu("h100-sxm").id == "h100-sxm"


def test_decaying_acceptance_uses_per_position_figures(tmp_path, runner):
    from planner import speedup as sp

    server = Path(__file__).parent / "data" / "server"
    out = tmp_path / "v.yaml"
    result = runner.invoke(main, ["calibrate", "--vllm-metrics-before", str(server / "vllm_v1_before.prom"),
                                  "--vllm-metrics", str(server / "vllm_v1_after.prom"), "--target", "llama-3.1-70b",
                                  "--draft", "llama-3.2-1b", "-o", str(out)])
    assert result.exit_code == 0, result.output
    fitted = read_calibration(out).fitted_acceptance[0]
    assert fitted.decays_with_position
    data = json.loads(runner.invoke(main, ["estimate", "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b",
                                           "--gpu", "h100-sxm", "--gpus", "2", "--k", "4", "--calibration", str(out),
                                           "--format", "json"]).stdout)
    assert data["alpha_source"] == "calibration"
    expected = float(sp.expected_accepted_length_positional(fitted.per_position[:4]))
    assert data["mean_accepted_length"] == pytest.approx(expected, rel=1e-4)
    assert data["mean_accepted_length"] < float(sp.expected_accepted_length(fitted.alpha, 4))


def test_timings_of_another_engine_are_not_applied(tmp_path):
    path = Path(_catalogue_calibration(tmp_path))
    cal = read_calibration(path)
    write_calibration(cal.model_copy(update={"engine": "hf"}), path)
    est = _est(str(path))  # plans with vLLM on the same H100
    assert est.calibration["timing_applied"] is False and est.alpha.source == "calibration"
    assert any("measured with hf, not vllm" in w for w in est.warnings)
