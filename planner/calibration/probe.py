"""The on-device probe: time the real pair and run real speculative rounds (torch + transformers).

Imported only by `specplan probe`; needs the optional extra `specplan[probe]`. Weights
come from local folders only, or are random (`--random-weights`: timing does not depend
on weight values); nothing is downloaded and trust_remote_code stays off unless asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.calibration.budget import Budget, monotonic_clock
from planner.calibration.passes import LoadedModel, generate_rounds, speculative_round, time_pass
from planner.calibration.schema import (
    CalibrationFile,
    DeviceIdentity,
    ModelIdentity,
    RoundsRecord,
    TimingPoint,
    write_calibration,
)
from planner.errors import SpecplanError
from planner.units import GIB

__all__ = [
    "ProbeUnavailable",
    "ProbeConfig",
    "LoadedModel",
    "require_torch",
    "load_model",
    "time_pass",
    "speculative_round",
    "generate_rounds",
    "read_prompts",
    "run_probe",
    "BUILTIN_PROMPTS",
    "monotonic_clock",
]

BUILTIN_PROMPTS = (
    "Explain in simple terms why the sky is blue.",
    "Write a Python function that returns the n-th Fibonacci number.",
    "What is 17 times 23? Show your steps.",
    "Summarize the plot of Romeo and Juliet in three sentences.",
    'Return a JSON object with the keys "name", "age" and "city" for a fictional person.',
    "List five tips for writing clear technical documentation.",
)
_RANDOM_PROMPT_TOKENS = 32
_TIMING_SHARE = 0.5  # half of the budget for the timing grid, half for speculative rounds


class ProbeUnavailable(SpecplanError):
    """torch/transformers missing: the probe is an optional extra.

    Exit 3, like a missing GPU: this machine lacks what the command needs (1 means "does not fit").
    """

    exit_code = 3


def require_torch() -> tuple[Any, Any]:
    """Import torch and transformers, or explain how to install them."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ProbeUnavailable(
            f"the probe needs torch and transformers ({exc.name} is missing): pip install 'specplan[probe]'"
        ) from None
    # specplan draws its own progress on stderr; the library's bars and notices would interleave.
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


@dataclass
class ProbeConfig:
    """What `specplan probe` was asked to do."""

    target: str
    draft: str
    random_weights: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "auto"
    budget_s: float = 120.0
    k_max: int = 8
    batch_sizes: tuple[int, ...] = (1, 4)
    contexts: tuple[int, ...] = (128, 512)
    prompts: tuple[str, ...] = BUILTIN_PROMPTS
    temperature: float = 0.7
    max_new_tokens: int = 64
    seed: int = 0
    gpu: str | None = None
    progress: Callable[[str, float], None] | None = None  # (what, fraction done)
    on_step: Callable[[], None] | None = None  # called between measurements (tests inject interrupts)
    # Seconds since an arbitrary origin; the budget reads only this, so tests inject a clock
    # instead of depending on how fast the machine happens to be.
    clock: Callable[[], float] | None = None  # None: monotonic_clock
    notes: list[str] = field(default_factory=list)


def _device(torch: Any, name: str) -> Any:
    """The torch device; a GPU that this machine (or this torch build) lacks is exit 3, not a crash."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            from planner.calibration.nvml import NoGpuError

            raise NoGpuError(f"--device {name}: torch sees {count} CUDA device(s) on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        from planner.calibration.nvml import NoGpuError

        raise NoGpuError(f"--device {name}: this machine's torch has no Apple GPU (MPS) backend")
    return device


def _dtype(torch: Any, name: str, device: Any) -> Any:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def load_model(source: str, cfg: ProbeConfig, torch: Any, transformers: Any, device: Any) -> LoadedModel:
    """Load from a local folder, or build random weights from a folder's or the catalogue's config."""
    from planner.catalog.hf_config import spec_to_config
    from planner.catalog.lookup import expand_path, find_model, looks_like_path

    dtype = _dtype(torch, cfg.dtype, device)
    path = expand_path(source)
    tokenizer = None
    if looks_like_path(source):
        folder = path if path.is_dir() else path.parent
        _check_folder(folder, cfg.trust_remote_code)
        try:
            if cfg.random_weights:
                config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
                model = transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=cfg.trust_remote_code)
            else:
                model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
            if (folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file():
                tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code)
        except Exception as exc:  # noqa: BLE001 - no weights, an unknown architecture, a broken file, the folder's own code
            first = (str(exc).strip().splitlines() or [""])[0]
            raise SpecplanError(f"{folder}: transformers cannot load it: {type(exc).__name__}: {first}") from None
        ident = str(folder.resolve())  # a local folder is named by its absolute path everywhere
    else:
        spec = find_model(source).spec
        if not cfg.random_weights:
            raise SpecplanError(
                f"{source} is a catalogue name: pass a local folder for real weights, or --random-weights "
                "to time a random-weight model built from its config (specplan never downloads weights)"
            )
        config = transformers.AutoConfig.for_model(**spec_to_config(spec))
        model = transformers.AutoModelForCausalLM.from_config(config)
        ident = spec.id
    model = model.to(device=device, dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype)
    return LoadedModel(model, ModelIdentity(id=ident, precision=precision, total_params=params), tokenizer,
                       int(model.config.vocab_size))


def _check_folder(folder: Path, trust_remote_code: bool) -> None:
    """Read the folder's config.json safely before transformers does (a FIFO would block it forever).

    A config whose ``auto_map`` points at Python files in the folder runs that code when loaded:
    refused here, in one line, unless --trust-remote-code was given.
    """
    from planner.inputs import read_json

    config = read_json(folder / "config.json", "config.json")
    if not isinstance(config, dict):
        raise SpecplanError(f"{folder / 'config.json'}: expected a JSON object")
    if config.get("auto_map") and not trust_remote_code:
        raise SpecplanError(f"{folder}: its config.json loads model code from the folder (auto_map); "
                            "pass --trust-remote-code only if you trust that code")


def read_prompts(path: str | None) -> tuple[str, ...]:
    """Prompts from a JSONL file (field prompt/text/content) or a text file (one per line); built-ins if None."""
    if path is None:
        return BUILTIN_PROMPTS
    from planner.inputs import parse_json, read_text

    p = Path(path)
    lines = [ln for ln in read_text(p, "--prompts").splitlines() if ln.strip()]
    if p.suffix in {".jsonl", ".json"}:
        out = []
        for n, line in enumerate(lines, start=1):
            row = parse_json(line, f"{p}: line {n}")
            text = row.get("prompt") or row.get("text") or row.get("content") if isinstance(row, dict) else row
            if not isinstance(text, str):
                raise SpecplanError(f"{p}: line {n}: field prompt: expected a string")
            out.append(text)
        lines = out
    if not lines:
        raise SpecplanError(f"{p}: no prompts found")
    return tuple(lines)


def _prompt_ids(loaded: LoadedModel, prompts: tuple[str, ...], torch: Any, seed: int) -> list[list[int]]:
    if loaded.tokenizer is not None:
        return [list(loaded.tokenizer(text)["input_ids"]) for text in prompts]
    # Random-weight models have no tokenizer: random prompts time and exercise the same path.
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, loaded.vocab_size, (_RANDOM_PROMPT_TOKENS,), generator=gen).tolist() for _ in prompts]


def _device_identity(torch: Any, device: Any) -> DeviceIdentity:
    if device.type == "cuda":
        try:
            from planner.calibration.nvml import local_group

            return local_group()[2]
        except SpecplanError:
            props = torch.cuda.get_device_properties(device)
            return DeviceIdentity(name=props.name, memory_gib=props.total_memory / GIB, backend="cuda")
    if device.type == "cpu":  # the host as --gpu cpu plans it, so the fitted timings apply there
        from planner.calibration.host import host_device, host_identity

        return host_identity(host_device())
    return DeviceIdentity(name=device.type, backend="mps" if device.type == "mps" else "unknown")


def _timing_grid(cfg: ProbeConfig) -> list[tuple[str, int, int, int]]:
    """(role, batch, context, new_tokens): decode for both models, verify n = 2..k_max+1 for the target."""
    grid = []
    for b in cfg.batch_sizes:
        for ctx in cfg.contexts:
            grid.append(("target", b, ctx, 1))
            grid.append(("draft", b, ctx, 1))
            grid.extend(("target", b, ctx, n) for n in range(2, cfg.k_max + 2))
    return grid


def run_probe(cfg: ProbeConfig, output: str | Path, force: bool = False) -> CalibrationFile:
    """Measure, fit and write the calibration file; on Ctrl-C or OOM write what was measured, marked partial."""
    # The budget is the user's wall time: importing torch and loading the models count against it.
    budget = Budget(cfg.budget_s, cfg.clock or monotonic_clock)
    torch, transformers = require_torch()
    torch.manual_seed(cfg.seed)
    device = _device(torch, cfg.device)
    target = load_model(cfg.target, cfg, torch, transformers, device)
    draft = load_model(cfg.draft, cfg, torch, transformers, device)
    if budget.left() <= 0:
        cfg.notes.append(f"importing torch and loading the models took the whole --budget-s {cfg.budget_s:g}: "
                         "raise it for timings and rounds")
    if target.vocab_size != draft.vocab_size and not _same_tokenizer(target, draft):
        cfg.notes.append(f"vocab sizes differ ({target.vocab_size} vs {draft.vocab_size}); ids beyond the smaller are never drafted")
    timings: list[TimingPoint] = []
    rounds: list[RoundsRecord] = []
    partial_reason = None
    try:
        _measure_timings(cfg, target, draft, torch, device, budget, timings)
        _measure_rounds(cfg, target, draft, torch, device, budget, rounds)
    except KeyboardInterrupt:
        partial_reason = "interrupted (Ctrl-C)"
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
        if "out of memory" not in str(exc).lower():
            raise
        partial_reason = f"out of memory: {str(exc).splitlines()[0]}"
    cal = _assemble(cfg, target, draft, torch, device, timings, rounds, partial_reason)
    write_calibration(cal, output, force=True if partial_reason else force)
    return cal


def _same_tokenizer(a: LoadedModel, b: LoadedModel) -> bool:
    return a.tokenizer is not None and b.tokenizer is not None and a.tokenizer.get_vocab() == b.tokenizer.get_vocab()


def _step(cfg: ProbeConfig, what: str, frac: float) -> None:
    if cfg.on_step is not None:
        cfg.on_step()
    if cfg.progress is not None:
        cfg.progress(what, frac)


def _measure_timings(cfg: ProbeConfig, target: LoadedModel, draft: LoadedModel, torch: Any, device: Any,
                     budget: Budget, out: list[TimingPoint]) -> None:
    grid = _timing_grid(cfg)
    # The grid gets its share of what is left after loading; each point is started only when the
    # last one's cost (a same-sized point is the best guess of the next) still fits, so the probe
    # ends within its budget instead of overrunning by one slow point.
    until = budget.clock() + max(budget.left(), 0.0) * _TIMING_SHARE
    last = 0.0
    for i, (role, b, ctx, n) in enumerate(grid):
        if not budget.affords(last, until) or budget.left() <= 0:
            cfg.notes.append(f"timing grid stopped by the budget after {i} of {len(grid)} points")
            return
        _step(cfg, f"timing {role} batch {b} context {ctx} tokens {n}", i / len(grid))
        model = target if role == "target" else draft
        began = budget.clock()
        out.append(TimingPoint(role=role, batch=b, context=ctx, new_tokens=n,  # type: ignore[arg-type]
                               seconds=time_pass(model, torch, device, b, ctx, n,
                                                 out_of_time=lambda: budget.left() <= 0)))
        last = budget.clock() - began


def _measure_rounds(cfg: ProbeConfig, target: LoadedModel, draft: LoadedModel, torch: Any, device: Any,
                    budget: Budget, out: list[RoundsRecord]) -> None:
    prompts = _prompt_ids(target if target.tokenizer else draft, cfg.prompts, torch, cfg.seed)
    modes = [("greedy", 0.0)] + ([("sampling", cfg.temperature)] if cfg.temperature > 0 else [])
    if budget.left() <= 0:
        cfg.notes.append("no speculative rounds: the budget was spent before they could start")
        return
    per_mode = budget.left() / len(modes)
    for m_index, (mode, temp) in enumerate(modes):
        gen = torch.Generator().manual_seed(cfg.seed + m_index)
        accepted: list[int] = []
        proposed: list[int] = []
        stop = budget.clock() + per_mode
        try:
            for p_index, ids in enumerate(prompts):
                began = budget.clock()
                for a, k in generate_rounds(target, draft, ids, cfg.k_max, temp, cfg.max_new_tokens, torch, device, gen):
                    accepted.append(a)
                    proposed.append(k)
                    _step(cfg, f"{mode} rounds, prompt {p_index + 1}/{len(prompts)}", p_index / len(prompts))
                    now = budget.clock()
                    # stop before a round that would end past the mode's share (the last round's cost)
                    if not budget.affords(now - began, stop):
                        raise TimeoutError
                    began = now
        except TimeoutError:
            cfg.notes.append(f"{mode} rounds stopped by the budget after {len(accepted)} rounds")
        finally:
            if accepted:
                out.append(RoundsRecord(mode=mode, temperature=temp, k=cfg.k_max,  # type: ignore[arg-type]
                                        accepted=accepted, proposed=proposed))


def _assemble(cfg: ProbeConfig, target: LoadedModel, draft: LoadedModel, torch: Any, device: Any,
              timings: list[TimingPoint], rounds: list[RoundsRecord], partial_reason: str | None) -> CalibrationFile:
    from planner.calibration.fitting import fit_acceptance

    fitted_acc = [fit_acceptance(r) for r in rounds]
    from planner.calibration.probe_fit import fit_probe_timings

    fitted_t, curves, notes = fit_probe_timings(cfg, timings, device)
    return CalibrationFile(
        source="probe", partial=partial_reason is not None, partial_reason=partial_reason,
        device=_device_identity(torch, device), engine="hf", target=target.identity, draft=draft.identity,
        timings=timings, rounds=rounds, fitted_timing=fitted_t, fitted_acceptance=fitted_acc,
        fitted_verify=curves, notes=[*cfg.notes, *notes],
    )
