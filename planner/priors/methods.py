"""Per-token acceptance prior for a speculation method (EAGLE, EAGLE-2/3, Medusa, MTP, n-gram, suffix).

Built from the published rows of planner/priors/methods.yaml (each converted by the one function of
its definition, planner/priors/method_rows.py), for one method and task, looking for rows in order:
the exact target, then its family, then the whole method; within each, the asked task before the
"mixed" (all-task) figures, since a head's or MTP layer's quality is the target's own. The band reuses the draft-model prior's: mid is the median of
the point rows, low / high the rows' min / max widened to at least mid + priors.yaml's band, all
inside its alpha range. Speedups only raise the band (tau >= speedup); a tree's tau is
inverted through the fitted tree model by default (planner/priors/tree_model.py, basis
"tree-model"); without a tree model it only bounds alpha from above, so such a band says so
(basis "tree-bound"). The tree's own tau band and shapes travel with it either way.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

from planner.errors import SpecplanError
from planner.priors.method_rows import RowAlpha, Shape, TreeModel, method_rows, methods_document, row_alpha
from planner.priors.model import parameters
from planner.priors.tree_model import fitted_tree_model

__all__ = ["METHODS", "METHOD_TASKS", "TreeBand", "MethodPrior", "method_prior"]

METHODS: tuple[str, ...] = tuple(methods_document()["methods"])
METHOD_TASKS: tuple[str, ...] = tuple(methods_document()["tasks"])
Scope = Literal["target", "family", "method"]
Basis = Literal["chain", "tree-model", "tree-bound"]
_MIXED = "mixed"
_SHOWN = 6


@dataclass(frozen=True)
class TreeBand:
    """Tree-measured tau for the same method and task: tokens per verify step, and the trees measured."""

    tau_low: float
    tau_mid: float
    tau_high: float
    shapes: tuple[Shape, ...]
    row_ids: tuple[str, ...]


@dataclass(frozen=True)
class MethodPrior:
    """A per-token chain alpha band for a method on a task, and the rows it came from."""

    method: str
    task: str
    low: float
    mid: float
    high: float
    basis: Basis  # chain rows, trees through a tree model, or only the upper bound trees allow
    scope: Scope  # where the rows were found: the exact target, its family, or method-wide
    task_used: str  # the task whose rows were used (the asked task, or "mixed")
    row_ids: tuple[str, ...]
    floor_ids: tuple[str, ...]  # speedup rows (tau >= speedup) that bound the band from below
    tree: TreeBand | None
    explanation: str


def _ids(ids: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(ids[:_SHOWN])
    return shown + (f" +{len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def _pool(method: str) -> tuple[str, ...]:
    """The methods whose rows measure ``method``'s heads (methods.yaml method_pools; itself alone by default)."""
    return tuple(methods_document().get("method_pools", {}).get(method, (method,)))


@lru_cache(maxsize=None)
def _row_alphas(method: str) -> tuple[RowAlpha, ...]:
    """Every row of ``method``'s pool read without a tree model (converted once: the rows are fixed data)."""
    pool = _pool(method)
    return tuple(row_alpha(r) for r in method_rows() if r.method in pool)


@lru_cache(maxsize=None)
def _fitted_row_alphas(method: str) -> tuple[RowAlpha, ...]:
    """Every row of ``method``'s pool read through each row's own fitted tree model (converted once)."""
    pool = _pool(method)
    return tuple(row_alpha(r, fitted_tree_model(r.method) or fitted_tree_model(method)) for r in method_rows()
                 if r.method in pool)


def _scopes(target: str | None, family: str | None) -> list[tuple[Scope, Callable[[RowAlpha], bool]]]:
    """Where to look for rows, nearest first: the target, its family, the whole method."""
    out: list[tuple[Scope, Callable[[RowAlpha], bool]]] = []
    if target:
        out.append(("target", lambda a: a.row.target.lower() == target.lower()))
    if family:
        out.append(("family", lambda a: a.row.family.lower() == family.lower()))
    out.append(("method", lambda a: True))
    return out


def _pick(alphas: list[RowAlpha], tasks: tuple[str, ...], bound: str, scopes: list) -> tuple[list[RowAlpha], Scope, str]:
    """The nearest rows of this bound kind: nearest scope first, and in it the asked task before "mixed"."""
    for scope, match in scopes:
        for task in tasks:
            hits = [a for a in alphas if a.bound == bound and a.row.task == task and match(a)]
            if hits:
                return hits, scope, task
    return [], "method", tasks[0]


def band_from_points(points: list[float], floor: float | None = None) -> tuple[float, float, float]:
    """(low, mid, high) per-token alpha from point rows (probability).

    mid = median; low = min(rows, mid + band low); high = max(rows, mid + band high), with
    priors.yaml's band and alpha range; a floor (tau >= a measured speedup) lifts low and mid to it.
    """
    p = parameters()
    lo_r, hi_r = p.alpha_range
    mid = statistics.median(points)
    low = min(min(points), mid + p.band[0])
    if floor is not None:
        low, mid = max(low, floor), max(mid, floor)
    high = max(max(points), mid + p.band[1])
    clip = lambda x: min(max(x, lo_r), hi_r)  # noqa: E731
    return clip(low), clip(mid), clip(high)


def _tree_band(alphas: list[RowAlpha], task: str, scopes: list) -> TreeBand | None:
    hits, _, _ = _pick([a for a in alphas if a.tree_measured], (task, _MIXED), "upper", scopes)
    hits = hits or _pick([a for a in alphas if a.tree_measured], (task, _MIXED), "point", scopes)[0]
    if not hits:
        return None
    taus = [float(a.row.value) for a in hits]  # type: ignore[arg-type]
    shapes = tuple(dict.fromkeys(a.row.shape for a in hits))
    return TreeBand(min(taus), statistics.median(taus), max(taus), shapes, tuple(a.row.id for a in hits))


def method_prior(method: str, task: str = "chat", target: str | None = None, family: str | None = None,
                 tree_model: TreeModel | Literal["fitted"] | None = "fitted") -> MethodPrior:
    """Prior band of per-token chain alpha for ``method`` on ``task`` (dimensionless, 0..1).

    ``target`` is the Hub id and ``family`` the catalogue family of the model served; rows are
    taken from the nearest of target, family, method. ``tree_model(shape, alpha) -> tau`` (the
    tree module's expected accepted length) turns tree-measured rows into points. The default,
    "fitted", is planner/priors/tree_model.py's model under the method's rank profile where that
    profile was fitted to published chain/tree pairs (EAGLE, EAGLE-2, EAGLE-3 heads; Medusa's rows
    stay bounds); None leaves tree rows as upper bounds only.
    """
    if method not in METHODS:
        raise SpecplanError(f"unknown speculation method {method!r}; choose from {', '.join(METHODS)}")
    notes = []
    if task not in METHOD_TASKS:
        if task not in parameters().task_shift:
            raise SpecplanError(f"unknown task {task!r}; choose from {', '.join(METHOD_TASKS)}")
        notes.append(f"no method rows are filed under {task!r}; its all-task figures stand in")
    rows_of = method
    if not any(r.method == method for r in method_rows()):
        fallback = methods_document()["method_fallback"].get(method)
        if fallback is None:
            raise SpecplanError(f"no published acceptance figure for {method} in planner/priors/methods.yaml")
        rows_of = fallback["method"]
        notes.append(f"{method} uses {rows_of}'s rows: {' '.join(fallback['why'].split())}")
    if tree_model is None:
        alphas = list(_row_alphas(rows_of))
    elif tree_model == "fitted":
        alphas = list(_fitted_row_alphas(rows_of) if fitted_tree_model(rows_of) else _row_alphas(rows_of))
    else:
        alphas = [row_alpha(r, tree_model) for r in method_rows() if r.method == rows_of]
    scopes = _scopes(target, family)
    tasks = (task, _MIXED) if task != _MIXED else (_MIXED,)
    points, scope, task_used = _pick(alphas, tasks, "point", scopes)
    basis: Basis = "tree-model" if points and all(a.tree_measured for a in points) else "chain"
    if not points:
        points, scope, task_used = _pick(alphas, tasks, "upper", scopes)
        basis = "tree-bound"
    if not points:
        raise SpecplanError(f"no published acceptance figure for {method} on {task} in planner/priors/methods.yaml")
    match = dict(scopes)[scope]
    floors = [a for a in alphas if a.bound == "lower" and a.row.task == task and match(a)]
    floor = statistics.median(a.alpha for a in floors) if floors else None
    low, mid, high = band_from_points([a.alpha for a in points], floor)
    tree = _tree_band(alphas, task, scopes)
    ids = tuple(a.row.id for a in points)
    where = {"target": f"target {target}", "family": f"family {family}", "method": "all targets"}[scope]
    text = _explanation(method, task, (low, mid, high), basis, points, f"{task_used} task, {where}", floors, floor,
                        tree, notes)
    return MethodPrior(method, task, low, mid, high, basis, scope, task_used, ids,
                       tuple(a.row.id for a in floors), tree, text)


def _explanation(method: str, task: str, band: tuple[float, float, float], basis: Basis, points: list[RowAlpha],
                 found: str, floors: list[RowAlpha], floor: float | None, tree: TreeBand | None,
                 notes: list[str]) -> str:
    """One line naming the rows behind the band, as alpha_prior's explanation names its anchors."""
    low, mid, high = band
    what = {"chain": "point rows", "tree-model": "tree rows through the tree model",
            "tree-bound": "tree rows, upper bounds only (no chain row; the tree model converts tau)"}[basis]
    temps = sorted({a.row.temperature for a in points if a.row.temperature is not None})
    if temps:
        what += f" at temperature {'/'.join(f'{t:g}' for t in temps)}"
    b = parameters().band
    text = (f"{method} on {task}: alpha {mid:.3f} (median of {len(points)} {what}, {found}: "
            f"{_ids([a.row.id for a in points])}), band {low:.2f}-{high:.2f} (rows' min/max, at least mid "
            f"{b[0]:+.2f}/{b[1]:+.2f})")
    if floor is not None:
        text += (f"; {task} speedups need tau >= speedup: alpha at least {floor:.3f} (median, "
                 f"{_ids([a.row.id for a in floors])})")
    if tree is not None:
        text += f"; trees measured tau {tree.tau_low:g}-{tree.tau_high:g} ({_ids(tree.row_ids)})"
    return text + "; " + "; ".join(notes + ["planner/priors/methods.yaml"])


def _table_row(a: RowAlpha) -> str:
    sign = {"point": "=", "lower": ">=", "upper": "<="}[a.bound]
    return f"{a.row.id:26} {a.row.method:7} {a.row.task:10} alpha {sign} {a.alpha:.3f}  {a.how}"


if __name__ == "__main__":  # python -m planner.priors.methods: every row with its alpha
    print("\n".join(_table_row(row_alpha(r)) for r in method_rows()))
