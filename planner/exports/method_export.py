"""What the server writers share for a head / MTP / lookup plan: the head to name and the method's keys.

The head is written as the plan names it: a Hub id exactly, a local folder as an absolute
path (the server may start in another directory), or ``--head-path`` when given. MTP from
the target checkpoint's own nextn layers loads no second model: its "head" is the target
itself and no key names it. The keys come from ``method_args`` (planner/exports/
server_args/methods.yaml) for the release line, so a line without the method is refused
there, on one line, with the nearest line or server that has it.
"""

from __future__ import annotations

import os
import shlex

from planner.errors import SpecplanError
from planner.exports.common import ExportPlan
from planner.exports.method_args import MethodArgs, method_args
from planner.exports.method_settings import method_settings
from planner.exports.names import served_name
from planner.exports.text import check_word
from planner.exports.versions import ServerLine

__all__ = ["LOOKUP_METHODS", "head_reference", "method_keys", "method_measure", "method_notes"]

LOOKUP_METHODS = frozenset({"ngram", "suffix"})  # propose from the tokens seen: no checkpoint to load


def _is_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.path.isabs(name) or name in (".", "..")


def head_reference(plan: ExportPlan, head_path: str | None) -> str | None:
    """The checkpoint the files name for the plan's head; None where no second model is loaded."""
    assert plan.settings is not None
    if head_path is not None:
        if plan.method in LOOKUP_METHODS:
            raise SpecplanError(f"--head-path: method {plan.method} loads no model (it matches the tokens already seen)")
        return check_word(head_path, "--head-path")
    head = plan.settings.head
    if head is None:
        return None
    check_word(head, "plan: head")
    if plan.method == "mtp" and head.lower() in {n.lower() for n in (plan.target, served_name(plan.target),
                                                                     plan.target_catalog_id or "") if n}:
        return None  # the target's own nextn layers: the servers take them from the target checkpoint
    if _is_local(head):
        return check_word(os.path.abspath(os.path.expanduser(head)), "plan: head")
    return served_name(head)


def method_keys(plan: ExportPlan, server: str, line: ServerLine, head: str | None) -> MethodArgs:
    """``method_args`` of the plan's method on ``line``, with ``head`` as the checkpoint named."""
    assert plan.settings is not None
    fields = plan.settings.model_dump(exclude_unset=True)
    fields.pop("head", None)
    if head is not None:
        fields["head"] = head
    return method_args(server, method_settings(**fields), line)


def method_notes(args: MethodArgs) -> list[str]:
    """Header lines: which keys run the method on this line, and the line's own notes."""
    keys = ", ".join(args.keys)
    return [f"{args.method} on release line {args.line}: {keys or 'no keys'} "
            f"(planner/exports/server_args/methods.yaml).", *args.notes]


def method_measure(plan: ExportPlan) -> str:
    """The command that re-plans with the acceptance the server reports (tokens per verify step, bonus included)."""
    assert plan.settings is not None
    head = plan.settings.head
    words = ["specplan", "estimate", "--target", plan.target, "--gpu", plan.gpu, "--gpus", str(plan.tensor_parallel),
             "--method", plan.method, *(["--head", head] if head and plan.method != "mtp" else []),
             *(["--k", str(plan.k)] if plan.k else []), "--mean-accepted-length", "TAU"]
    return ("Re-plan with the measured mean acceptance length TAU (tokens per verify step, the target's own token "
            f"included): {' '.join(shlex.quote(w) for w in words)}")
