"""The published acceptance rows of planner/priors/methods.yaml, checked, and each row's alpha.

A row keeps its figure as printed (tau, acceptance rate, per-position acceptance or a speedup) with the chain or tree it was measured on; ``row_alpha`` reads it as a per-token chain
alpha through the one conversion of its definition (planner/priors/conversions.py), marked as a
point, a lower bound (speedups) or an upper bound (a tree's tau without a tree model).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any, Callable, Literal


from planner import speedup as sp
from planner.catalog.loading import safe_load
from planner.errors import CatalogError
from planner.priors.anchors import alpha_floor_from_speedup
from planner.priors.conversions import alpha_from_mean_accepted_length, alpha_from_per_position, tree_alpha_bound

__all__ = ["Shape", "MethodRow", "RowAlpha", "TreeModel", "methods_document", "method_rows", "row_alpha",
           "METHOD_KINDS"]

Kind = Literal["mean_accepted_length", "acceptance_rate", "per_position", "speedup"]
Bound = Literal["point", "lower", "upper"]
METHOD_KINDS: tuple[str, ...] = ("mean_accepted_length", "acceptance_rate", "per_position", "speedup")
_LABEL = "planner/priors/methods.yaml"
_ROW_FIELDS = ("id", "method", "target", "family", "task", "benchmark", "kind", "value", "shape", "temperature",
               "source", "where", "primary")


@dataclass(frozen=True)
class Shape:
    """What a figure was measured on: a chain of k drafts, or a tree (token counts)."""

    kind: Literal["chain", "tree"]
    k: int | None = None  # chain: drafts per verify step
    depth: int | None = None  # tree: most drafts on one path (SGLang num_steps)
    topk: int | None = None  # tree: branching per step (None: a static tree's own)
    verify_tokens: int | None = None  # tree: tokens in the verify pass, root included (SGLang num_draft_tokens)
    tree: str | None = None  # tree: static tree name, or "dynamic"

    @property
    def drafts(self) -> int:
        """Most drafts one verify step can accept: the chain's k or the tree's depth (tokens)."""
        return int(self.k if self.kind == "chain" else self.depth)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The shape as a source would print it."""
        if self.kind == "chain":
            return f"chain k={self.k}"
        branching = f"topk {self.topk}" if self.topk else f"static {self.tree}"
        return f"tree depth {self.depth}, {branching}, {self.verify_tokens} verify tokens"


@dataclass(frozen=True)
class MethodRow:
    """One published acceptance figure for a method on a target and task."""

    id: str
    method: str
    target: str
    family: str
    task: str
    benchmark: str
    kind: Kind
    value: float | tuple[float, ...]
    shape: Shape
    temperature: float | None  # sampling temperature of the run (0: greedy; None: not stated)
    source: str
    where: str
    primary: bool  # False: read through a secondary copy of the source


# A tree model maps (shape, per-token alpha) to the tree's tau; given one, a tree row is inverted to a point alpha.
TreeModel = Callable[[Shape, float], float]


@dataclass(frozen=True)
class RowAlpha:
    """A row's figure read as a per-token chain alpha (or a bound on it)."""

    row: MethodRow
    alpha: float
    bound: Bound
    how: str

    @property
    def tree_measured(self) -> bool:
        """True when the figure is a tree's: its alpha needs the tree model to be a point."""
        return self.row.shape.kind == "tree"


@lru_cache(maxsize=1)
@lru_cache(maxsize=1)
def methods_document() -> dict[str, Any]:
    """planner/priors/methods.yaml as plain data (tasks, methods, fallbacks, sources, rows); read once, not to be
    modified by callers."""
    doc = safe_load((files("planner") / "priors" / "methods.yaml").read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not {"tasks", "methods", "method_fallback", "sources", "rows"} <= set(doc):
        raise CatalogError(f"{_LABEL}: expected tasks, methods, method_fallback, sources and rows")
    return doc


def _shape(row_id: str, raw: Any) -> Shape:
    try:
        shape = Shape(**raw)
    except TypeError as exc:
        raise CatalogError(f"{_LABEL} row {row_id}: shape: {exc}") from None
    ok = (shape.kind == "chain" and isinstance(shape.k, int) and shape.k >= 1) or (
        shape.kind == "tree" and isinstance(shape.depth, int) and shape.depth >= 1 and shape.verify_tokens)
    if not ok:
        raise CatalogError(f"{_LABEL} row {row_id}: a chain needs k >= 1, a tree depth >= 1 and verify_tokens")
    return shape


def _row(doc: dict[str, Any], raw: dict[str, Any]) -> MethodRow:
    row_id = raw.get("id", "?")
    if set(raw) != set(_ROW_FIELDS):
        raise CatalogError(f"{_LABEL} row {row_id}: fields must be exactly {', '.join(_ROW_FIELDS)}")
    value = tuple(float(v) for v in raw["value"]) if isinstance(raw["value"], list) else float(raw["value"])
    temperature = None if raw["temperature"] is None else float(raw["temperature"])
    row = MethodRow(**{**raw, "value": value, "shape": _shape(row_id, raw["shape"]), "temperature": temperature,
                       "primary": bool(raw["primary"])})
    if row.method not in doc["methods"] or row.task not in doc["tasks"] or row.kind not in METHOD_KINDS:
        raise CatalogError(f"{_LABEL} row {row_id}: unknown method, task or kind")
    if row.source not in doc["sources"]:
        raise CatalogError(f"{_LABEL} row {row_id}: source {row.source!r} is not in sources")
    if (row.kind == "per_position") != isinstance(value, tuple):
        raise CatalogError(f"{_LABEL} row {row_id}: per_position takes a list of values, other kinds one number")
    if row.kind != "mean_accepted_length" and row.shape.kind == "tree":
        raise CatalogError(f"{_LABEL} row {row_id}: only a mean accepted length can be a tree's figure")
    return row


@lru_cache(maxsize=1)
def method_rows() -> tuple[MethodRow, ...]:
    """Every row of methods.yaml, checked (known method, task, kind and source; a well-formed shape)."""
    doc = methods_document()
    rows = tuple(_row(doc, raw) for raw in doc["rows"])
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise CatalogError(f"{_LABEL}: duplicate row ids")
    return rows


def _invert_tree(model: TreeModel, shape: Shape, tau: float) -> float:
    """The per-token alpha with model(shape, alpha) = tau; a tree's tau rises with alpha like a chain's.

    Illinois regula falsi (planner.speedup.root_of_increasing: a dozen model calls where bisection
    to 2^-60 takes 60, each call pricing a whole tree); a tau outside [model(0), model(1)] lands on the nearer end.
    """
    f = lambda a: model(shape, a) - tau  # noqa: E731
    lo, hi = f(0.0), f(1.0)
    if lo >= 0:
        return 0.0
    if hi <= 0:
        return 1.0
    return float(sp.root_of_increasing(f, 0.0, 1.0, xtol=1e-13))


def row_alpha(row: MethodRow, tree_model: TreeModel | None = None) -> RowAlpha:
    """The row's figure as a per-token chain alpha, through the conversion of its definition.

    tau of a chain: the exact inverse of E[L](alpha, k). Acceptance rate: the inverse of
    ``acceptance_rate_from_alpha``. Per-position: the constant alpha with the same E[L]. A
    speedup: a lower bound (tau >= S). A tree's tau: inverted through ``tree_model`` when given,
    else the upper bound its deepest chain allows (planner.priors.conversions.tree_alpha_bound).
    """
    shape, v = row.shape, row.value
    if row.kind == "per_position":
        return RowAlpha(row, alpha_from_per_position(v), "point", f"per-position acceptance {list(v)} at k={len(v)}")  # type: ignore[arg-type]
    if row.kind == "acceptance_rate":
        alpha = float(sp.alpha_from_acceptance_rate(v, shape.k))
        return RowAlpha(row, alpha, "point", f"accepted/proposed {v:g} at k={shape.k} inverted")
    if row.kind == "speedup":
        return RowAlpha(row, alpha_floor_from_speedup(float(v), shape.k), "lower",  # type: ignore[arg-type]
                        f"speedup {v:g}x needs tau >= {v:g} at k={shape.k}")
    if shape.kind == "chain":
        return RowAlpha(row, alpha_from_mean_accepted_length(float(v), shape.drafts), "point",  # type: ignore[arg-type]
                        f"tau {v:g} of a chain k={shape.k} inverted")
    if tree_model is not None:
        return RowAlpha(row, _invert_tree(tree_model, shape, float(v)), "point",  # type: ignore[arg-type]
                        f"tau {v:g} of a {shape.describe()} inverted through the tree model")
    return RowAlpha(row, tree_alpha_bound(float(v), shape.drafts), "upper",  # type: ignore[arg-type]
                    f"tau {v:g} of a {shape.describe()}: its {shape.depth}-draft chain allows at most this")
