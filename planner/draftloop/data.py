"""planner/draftloop/loops.yaml: each engine's draft loop per release line, and the confidence model's kappa."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from pydantic import Field, ValidationError

from planner.catalog.loading import format_validation_error, safe_load
from planner.catalog.schemas import Frozen
from planner.draftloop.rounds import Rule
from planner.versions import release_key
from planner.errors import CatalogError, SpecplanError

__all__ = ["LoopLine", "EngineLoops", "LoopSpec", "loop_table", "default_kappa", "engine_loop"]

_SCHEDULES = ("fixed", "heuristic", "heuristic_transient")


class ServerDefaults(Frozen):
    """The draft-length settings the engine itself uses when none are given."""

    n_max: int = Field(ge=1, le=64)
    n_min: int = Field(ge=0, le=64)
    p_min: float = Field(ge=0, le=1)


class LoopLine(Frozen):
    """One release line's draft loop."""

    name: str
    min: str | None = None  # first version of the line (inclusive)
    below: str | None = None  # first version after it
    rule: Rule
    schedule: str = "fixed"
    server_defaults: ServerDefaults | None = None
    plan_p_min: float = Field(0.0, ge=0, le=1, description="confidence threshold specplan plans and exports with")
    fixed_round_us: float = Field(ge=0, le=1e6, description="host time per round outside the passes, us")
    extra_draft_passes: int = Field(0, ge=0, le=4, description="draft passes per round beyond the rule's count")
    draft_pass_us: float = Field(0.0, ge=0, le=1e5, description="host time per draft pass outside the cost model's pass, us")
    by_name_only: bool = Field(False, description="chosen only when --server-version names it (a tool, not a release)")
    why: str
    source: tuple[str, ...] | str


class EngineLoops(Frozen):
    """An engine's release lines, oldest first."""

    k_means: str
    lines: tuple[LoopLine, ...] = Field(min_length=1)


class _Confidence(Frozen):
    kappa: float = Field(gt=0, le=1e4)
    source: str


class _Doc(Frozen):
    confidence: _Confidence
    engines: dict[str, EngineLoops]


@dataclass(frozen=True)
class LoopSpec:
    """The draft loop a plan is priced with (one engine, one release line, the plan's settings)."""

    engine: str
    line: str
    rule: Rule
    schedule: str  # fixed | heuristic | heuristic_transient
    p_min: float  # confidence threshold (llama.cpp p-min, transformers assistant_confidence_threshold); 0: none
    n_min: int  # drafts shorter than this are dropped (llama.cpp)
    fixed_round_us: float  # host time per round outside the forward passes, us
    kappa: float  # confidence-model concentration (dimensionless)
    k_means: str  # what the plan's k is for this engine (n_max for llama.cpp)
    extra_draft_passes: int = 0  # draft passes per round beyond the rule's count (llama-speculative's seed pass)
    draft_pass_us: float = 0.0  # host time the proposer adds to every draft pass (vLLM V0's per-step worker), us

    @property
    def variable_length(self) -> bool:
        """Whether drafted tokens per round vary (a threshold or a schedule), so accepted/drafted != alpha(k)."""
        return (self.rule != "fixed" and self.p_min > 0) or self.schedule != "fixed"


@lru_cache(maxsize=1)
def _doc() -> _Doc:
    label = "planner/draftloop/loops.yaml"
    raw = safe_load((files("planner.draftloop") / "loops.yaml").read_text(encoding="utf-8"))
    try:
        doc = _Doc.model_validate(raw)
    except ValidationError as err:
        raise CatalogError(format_validation_error(label, "loops", err)) from None
    for name, eng in doc.engines.items():
        for line in eng.lines:
            if line.schedule not in _SCHEDULES:
                raise CatalogError(f"{label}: {name} {line.name}: schedule {line.schedule!r} is not one of {_SCHEDULES}")
    return doc


def loop_table() -> dict[str, EngineLoops]:
    """Every engine's loop lines, by engine name."""
    return dict(_doc().engines)


def default_kappa() -> float:
    """The confidence model's concentration from loops.yaml (dimensionless)."""
    return _doc().confidence.kappa


def _line_for(eng: EngineLoops, version: str | None, engine: str) -> LoopLine:
    ranged = [line for line in eng.lines if not line.by_name_only]
    if version is None:
        return ranged[-1]
    by_name = {line.name.lower(): line for line in eng.lines}
    if version.strip().lower() in by_name:
        return by_name[version.strip().lower()]
    key = release_key(engine, version)
    for line in ranged:
        if ((line.min is None or key >= release_key(engine, line.min))
                and (line.below is None or key < release_key(engine, line.below))):
            return line
    names = ", ".join(f"{x.name} ({x.min or '...'}-{x.below or '...'})" for x in eng.lines)
    raise SpecplanError(f"{engine} {version}: no draft-loop line covers this version; lines: {names}")


def engine_loop(engine: str, version: str | None = None, p_min: float | None = None,
                n_min: int | None = None, kappa: float | None = None) -> LoopSpec:
    """The loop an engine runs (newest line unless ``version`` names one), with the plan's p-min / n-min.

    An engine loops.yaml does not list drafts a fixed k with no round overhead.
    """
    if p_min is not None and not 0 <= p_min <= 1:
        raise SpecplanError(f"--p-min must be between 0 and 1 (got {p_min!r})")
    kap = default_kappa() if kappa is None else float(kappa)
    eng = loop_table().get(engine)
    if eng is None:
        return LoopSpec(engine, "default", "fixed", "fixed", 0.0, 0, 0.0, kap, "k")
    line = _line_for(eng, version, engine)
    if p_min is not None and line.rule == "fixed":
        raise SpecplanError(f"--p-min applies to engines that stop drafting on the draft's confidence; "
                            f"{engine} ({line.name}) drafts a fixed k")
    return LoopSpec(engine=engine, line=line.name, rule=line.rule, schedule=line.schedule,
                    p_min=line.plan_p_min if p_min is None else float(p_min), n_min=0 if n_min is None else int(n_min),
                    fixed_round_us=line.fixed_round_us, kappa=kap, k_means=eng.k_means,
                    extra_draft_passes=line.extra_draft_passes, draft_pass_us=line.draft_pass_us)
