"""The engine probe for llama.cpp: time the user's own build with llama-bench, accept with llama-speculative.

`specplan probe --engine llamacpp` runs the tools of a llama.cpp build folder (``--llama-bin``) on
the pair's GGUF files, so the fitted timings describe the llama.cpp kernels on this device (engine
``llamacpp``), not the transformers path. Every tool runs as a subprocess with a time limit taken
from the budget; a missing tool is exit 3, a failing run exit 2, both one line.

llama-bench (``-o json``) prints one record per test with ``n_prompt``, ``n_gen``, ``n_depth`` and
``samples_ns`` (llama.cpp tools/llama-bench/llama-bench.cpp, json_printer): a ``tg`` test times
``n_gen`` single-token decode passes after ``n_depth`` cached tokens, a ``pp`` test one batch of
``n_prompt`` tokens, which is the target's verify pass of n = k + 1 tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.calibration.budget import Budget, monotonic_clock
from planner.calibration.llamacpp_speculative import SpeculativeRuns, run_prompts
from planner.calibration.probe import BUILTIN_PROMPTS, ProbeUnavailable
from planner.calibration.schema import CalibrationFile, DeviceIdentity, ModelIdentity, TimingPoint, write_calibration
from planner.calibration.verify_curve import fit_verify_curves
from planner.errors import SpecplanError
from planner.units import GB

__all__ = ["LlamaProbeConfig", "parse_bench_json", "bench_precision", "run_llamacpp_probe", "LlamaToolMissing"]

_BENCH_SHARE = 0.6  # of the budget for llama-bench (two models); the rest for llama-speculative
# On the host CPU a small model's weights stay in the last-level cache between passes, so decode can
# beat the measured DRAM copy bandwidth (the tiny CI pair: 20 MB, 0.6 ms a pass = 35 GB/s against a
# copy of 21-39 GB/s on a loaded 2-core EPYC); L3 bandwidth is a few times DRAM's, hence the bound.
_CPU_MAX_ETA = 4.0
_MIN_TOOL_S = 5.0  # a tool given less than this cannot even load a model: stop instead


class LlamaToolMissing(ProbeUnavailable):
    """The build folder lacks a tool (exit 3: this machine lacks what the command needs)."""


@dataclass
class LlamaProbeConfig:
    """What `specplan probe --engine llamacpp` was asked to do."""

    llama_bin: str
    target: str
    draft: str
    target_gguf: str
    draft_gguf: str
    gpu: str | None = "cpu"
    budget_s: float = 120.0
    k_max: int = 4
    contexts: tuple[int, ...] = (0, 128)  # llama-bench -d depths (tokens already cached)
    threads: int | None = None  # llama-bench / llama-speculative -t; None: the tools' default
    repetitions: int = 10  # llama-bench -r; the fit takes the median repeat (a CPU pass is ~1 ms: noisy)
    tg_tokens: int = 32  # llama-bench -n: decode passes per tg repeat
    prompts: tuple[str, ...] = BUILTIN_PROMPTS
    n_predict: int = 32
    p_min: float = 0.75  # llama-speculative --spec-draft-p-min (recorded, so alpha is fitted under it)
    progress: Callable[[str, float], None] | None = None
    clock: Callable[[], float] | None = None  # None: monotonic_clock; tests inject one
    run: Callable[..., subprocess.CompletedProcess] | None = None  # None: subprocess.run
    notes: list[str] = field(default_factory=list)


def _tool(cfg: LlamaProbeConfig, name: str) -> Path:
    path = Path(cfg.llama_bin).expanduser() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise LlamaToolMissing(f"--llama-bin {cfg.llama_bin}: no executable {name} (build llama.cpp's tools there)")
    return path


def _gguf(path: str, flag: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecplanError(f"{flag} {path}: no such GGUF file")
    return p


def _call(cfg: LlamaProbeConfig, argv: list[Any], timeout_s: float, what: str) -> str:
    """Run one tool with a time limit; stdout+stderr merged; a failure or timeout is one SpecplanError line."""
    runner = cfg.run or subprocess.run
    try:
        done = runner([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                      errors="replace", timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise SpecplanError(f"{what}: did not finish within {timeout_s:.0f} s of the budget (raise --budget-s)") from None
    except OSError as exc:
        raise SpecplanError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        tail = [ln for ln in (done.stderr or "").splitlines() if ln.strip()][-1:] or ["no message"]
        raise SpecplanError(f"{what}: exit {done.returncode}: {tail[0].strip()[:300]}")
    return done.stdout + ("\n" + done.stderr if done.stderr else "")


def parse_bench_json(text: str, role: str, label: str = "llama-bench -o json",
                     kinds: tuple[str, ...] = ("pp", "tg")) -> list[TimingPoint]:
    """llama-bench JSON records -> timing points, seconds per pass.

    tg (n_gen > 0, n_prompt 0): one decode pass = sample_ns / n_gen (s), new_tokens 1, context n_depth.
    pp (n_prompt > 0, n_gen 0): one batch of n_prompt tokens = sample_ns (s), new_tokens n_prompt.
    Mixed pp+tg tests (-pg), batches over the schema's limit and tests not in ``kinds`` are skipped.
    """
    start = text.find("[")
    try:
        records = json.loads(text[start:text.rfind("]") + 1]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise SpecplanError(f"{label}: not llama-bench JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(records, list) or not records:
        raise SpecplanError(f"{label}: expected a JSON list of llama-bench records")
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not {"n_prompt", "n_gen", "samples_ns"} <= r.keys():
            raise SpecplanError(f"{label}: record {i}: expected n_prompt, n_gen and samples_ns")
        n_prompt, n_gen, depth = int(r["n_prompt"]), int(r["n_gen"]), int(r.get("n_depth") or 0)
        samples = [float(s) / 1e9 for s in r["samples_ns"]]
        if not samples or any(s <= 0 for s in samples):
            raise SpecplanError(f"{label}: record {i}: samples_ns must be positive")
        if n_gen > 0 and n_prompt == 0 and "tg" in kinds:
            out.append(TimingPoint(role=role, batch=1, context=depth, new_tokens=1,  # type: ignore[arg-type]
                                   seconds=[s / n_gen for s in samples], bench_test="tg"))
        elif n_prompt > 0 and n_gen == 0 and n_prompt <= 65 and "pp" in kinds:
            out.append(TimingPoint(role=role, batch=1, context=depth, new_tokens=n_prompt,  # type: ignore[arg-type]
                                   seconds=samples, bench_test="pp"))
    return out


def bench_precision(text: str) -> str | None:
    """The weight type llama-bench names in model_type ("llama ?B Q8_0" -> "q8_0"), lower case."""
    try:
        records = json.loads(text[text.find("["):text.rfind("]") + 1])
        return str(records[0]["model_type"]).split()[-1].lower()
    except (ValueError, LookupError, TypeError, AttributeError):
        return None


def _bench(cfg: LlamaProbeConfig, gguf: Path, role: str,
           timeout_s: float) -> tuple[list[TimingPoint], list[TimingPoint], list[TimingPoint], str]:
    """llama-bench on one model: (all points, tg points, pp points, its JSON text).

    tg at every depth; for the target also pp1..pp(k_max+1) at every depth, the verify curve.
    r(n) is read as pp(n) / pp(1) at the same depth, not pp(n) / tg and not at depth 0:
    * at a depth, because the verify pass reads the cached tokens' K/V as decode does: pp at depth 0
      leaves attention's share out of both passes;
    * over pp1, not tg, because each pp repeat at a depth starts right after llama-bench restores the
      depth's K/V state (llama_state_seq_set_data, tools/llama-bench/llama-bench.cpp), so its one timed
      pass pays a first-pass cost that tg spreads over its n_gen passes (tests/data/llamabench_tiny_target.json,
      fastest repeats: d=128 pp1 0.712 ms against tg 0.608 ms; d=0, no restore, 0.561 against 0.551).
      That cost is in both pp(n) and pp(1), so their ratio is the pass's own growth with n; the plan
      multiplies it by the tg-fitted decode time.
    llama-bench's pp asks for the last token's logits only, where a verify pass takes all n: the output
    matrix is read once either way, so only its n - 1 extra rows of compute are missing (small
    unless the vocabulary dwarfs the hidden size).
    """
    prompts = ",".join(str(n) for n in range(1, cfg.k_max + 2)) if role == "target" else "0"
    argv = [_tool(cfg, "llama-bench"), "-m", gguf, "-p", prompts, "-n", cfg.tg_tokens, "-r", cfg.repetitions,
            "-d", ",".join(str(c) for c in cfg.contexts), "-o", "json"]
    if cfg.threads:
        argv += ["-t", cfg.threads]
    text = _call(cfg, argv, timeout_s, f"llama-bench ({role} {gguf.name})")
    label = f"llama-bench ({role})"
    return (parse_bench_json(text, role, label), parse_bench_json(text, role, label, kinds=("tg",)),
            parse_bench_json(text, role, label, kinds=("pp",)), text)


# llama-speculative-simple (examples/speculative-simple, b11312) drafts through common_speculative, the
# loop llama-server runs, and prints its statistics line with "#acc rate/pos" (per-position acceptance);
# llama-speculative (examples/speculative) runs a loop of its own and prints totals only. The probe takes
# the first of these that --llama-bin holds.
SPECULATIVE_TOOLS = ("llama-speculative-simple", "llama-speculative")
# What each tool needs beyond the shared flags (b11312): speculative-simple initialises no drafter unless
# the type is named (common_speculative_init builds one per enabled --spec-type), and its statistics line
# is SPC_TRC, printed only at -lv 4 (common/speculative.cpp common_speculative_print_stats).
_TOOL_FLAGS = {"llama-speculative-simple": ("--spec-type", "draft-simple", "-lv", "4"), "llama-speculative": ()}


def speculative_tool(cfg: LlamaProbeConfig) -> str:
    """The acceptance tool this build has (SPECULATIVE_TOOLS order); exit 3 naming both when it has neither."""
    for name in SPECULATIVE_TOOLS:
        try:
            _tool(cfg, name)
            return name
        except LlamaToolMissing:
            continue
    raise LlamaToolMissing(f"--llama-bin {cfg.llama_bin}: no executable {' or '.join(SPECULATIVE_TOOLS)} "
                           "(build llama.cpp's tools there)")


def _speculative(cfg: LlamaProbeConfig, target: Path, draft: Path, budget: Budget, out: SpeculativeRuns) -> SpeculativeRuns:
    """llama-speculative(-simple) on every prompt while the budget lasts (llamacpp_speculative.run_prompts)."""
    tool = speculative_tool(cfg)

    def call(prompt: str, timeout_s: float) -> str:
        argv = [_tool(cfg, tool), "-m", target, "-md", draft, "-p", prompt, "-n", cfg.n_predict,
                "--spec-draft-n-max", cfg.k_max, "--spec-draft-n-min", "0", "--spec-draft-p-min", cfg.p_min,
                "--temp", "0", "--seed", "1", *_TOOL_FLAGS[tool]]
        if cfg.threads:
            argv += ["-t", cfg.threads]
        return _call(cfg, argv, timeout_s, tool)

    out.tool = tool
    return run_prompts(cfg.prompts, call, budget, _MIN_TOOL_S, out)


def _device(cfg: LlamaProbeConfig) -> tuple[DeviceIdentity | None, Any]:
    """(identity, GpuSpec whose peak bandwidth the fit divides by); no --gpu: the host CPU."""
    from planner.calibration.devices import named_device

    return named_device(cfg.gpu or "cpu")


def _fit(cfg: LlamaProbeConfig, timings: list[TimingPoint], gpu: Any, precision: str | None) -> tuple[list, list[str]]:
    from planner.calibration.fitting import fit_timings
    from planner.catalog.lookup import find_model
    from planner.catalog.precisions import kv_format, weight_format
    from planner.costmodel import model_profile

    try:
        fmt = weight_format(precision or "")
    except SpecplanError:
        return [], [f"weight type {precision!r} from llama-bench is not a catalogue precision: raw timings only"]
    # Fitted on llama-bench's tg (decode) tests only: the verify curve (pp n) is compute as well as
    # bandwidth, and even pp1 runs slower than tg at depth on this build (1.03 vs 0.76 ms at d=128, 2 threads).
    profiles = {role: model_profile(find_model(src).spec, fmt, kv_format("fp16"))
                for role, src in (("target", cfg.target), ("draft", cfg.draft))}
    from planner.calibration.host import is_host_device

    max_eta = _CPU_MAX_ETA if cfg.gpu is None or is_host_device(cfg.gpu) else 1.0
    bw = gpu.memory_bandwidth_gb_s * GB
    depths = {role: {p.context for p in timings if p.role == role} for role in profiles}
    if all(len(d) >= 2 for d in depths.values()):
        # Per model: eta from the slope of tg over depth (the K/V read grows), overhead from the rest. One
        # shared eta (the joint fit) reads the draft's cache-resident weights at the target's efficiency:
        # on the tiny CI pair that left the draft's decode 2-4x off its own llama-bench tg.
        fitted = [f for role, prof in profiles.items()
                  for f in fit_timings([p for p in timings if p.role == role], {role: prof}, bw, max_eta=max_eta)]
        return fitted, ["eta and overhead fitted per model, each on its own llama-bench tg depths"]
    return fit_timings(timings, profiles, bw, max_eta=max_eta), []


def run_llamacpp_probe(cfg: LlamaProbeConfig, output: str | Path, force: bool = False) -> CalibrationFile:
    """Bench both models, run llama-speculative, fit, write; Ctrl-C writes what was measured, marked partial."""
    from planner.calibration.acceptance_stats import model_identity
    from planner.calibration.llamacpp_outputs import llamacpp_calibration

    budget = Budget(cfg.budget_s, cfg.clock or monotonic_clock)
    target, draft = _gguf(cfg.target_gguf, "--target-gguf"), _gguf(cfg.draft_gguf, "--draft-gguf")
    _tool(cfg, "llama-bench")
    speculative_tool(cfg)
    identity, gpu = _device(cfg)
    timings: list[TimingPoint] = []
    tg: list[TimingPoint] = []  # the tg tests alone: what the eta / overhead fit reads
    pp: list[TimingPoint] = []  # the pp tests alone: the verify curve
    precisions: dict[str, str | None] = {}
    spec = SpeculativeRuns()  # filled prompt by prompt: Ctrl-C keeps what was measured
    partial = None
    try:
        for i, (role, gguf) in enumerate((("target", target), ("draft", draft))):
            share = budget.left() * _BENCH_SHARE / (2 - i)
            if share < _MIN_TOOL_S:
                raise TimeoutError(f"llama-bench ({role}): the budget is spent")
            _progress(cfg, f"llama-bench {role}", i / 3)
            points, decode, batches, text = _bench(cfg, gguf, role, share)
            timings += points
            tg += decode
            pp += batches
            precisions[role] = bench_precision(text)
        if budget.left() < _MIN_TOOL_S:
            raise TimeoutError("llama-speculative: the budget is spent")
        _progress(cfg, "llama-speculative", 2 / 3)
        partial = _speculative(cfg, target, draft, budget, spec).partial
    except KeyboardInterrupt:
        partial = "interrupted (Ctrl-C)"
    except TimeoutError as exc:
        partial = f"{exc} (raise --budget-s)"
    fitted, notes = _fit(cfg, tg, gpu, precisions.get("target")) if tg else ([], [])
    if spec.prompts:
        labels = [f"{spec.tool} prompt {p.prompt + 1}" for p in spec.prompts]
        cal = llamacpp_calibration(spec.texts, cfg.k_max, cfg.target, cfg.draft, labels, p_min=cfg.p_min)
        acceptance, counters, notes = cal.fitted_acceptance, cal.counters, [*notes, *spec.notes, *cal.notes]
        notes.append(_speed_note(spec))
    else:
        acceptance, counters = [], None
    def ident(src: str, role: str) -> ModelIdentity:
        base = model_identity(src)
        return base.model_copy(update={"precision": precisions.get(role) or base.precision})

    cal = CalibrationFile(
        source="probe", partial=partial is not None, partial_reason=partial, device=identity, engine="llamacpp",
        target=ident(cfg.target, "target"), draft=ident(cfg.draft, "draft"), timings=timings, counters=counters,
        fitted_timing=fitted, fitted_acceptance=acceptance,
        fitted_verify=fit_verify_curves(pp, "llama-bench pp(n) / pp(1) at depth, fastest repeats"),
        per_prompt=spec.prompts, notes=[*cfg.notes, *notes],
    )
    write_calibration(cal, output, force=True if partial else force)
    return cal


def _speed_note(spec: SpeculativeRuns) -> str:
    """llama-speculative's own decode speed pooled over the prompts: committed tokens / decode seconds."""
    timed = [p for p in spec.prompts if p.decode_s]
    if not timed:
        return f"llama-speculative: {len(spec.prompts)} prompt(s), no decode time printed"
    tokens, seconds = sum(p.predicted for p in timed), sum(p.decode_s or 0.0 for p in timed)
    return (f"llama-speculative decode speed: {tokens / seconds:.1f} tokens/s over {len(timed)} prompt(s) "
            f"({tokens} tokens in {seconds:.3f} s, its own timer)")


def _progress(cfg: LlamaProbeConfig, what: str, frac: float) -> None:
    if cfg.progress is not None:
        cfg.progress(what, frac)
