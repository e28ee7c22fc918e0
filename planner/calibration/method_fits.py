"""What differs by proposal method when a server's acceptance is turned into alpha.

* Which proposer a calibration measured (``measured_proposer``): a draft model (``--draft``), an
  EAGLE / EAGLE-3 head (``--head``: Hub id as typed, a folder absolute), the target's own MTP
  layers (the target's id, or the NextN release given as ``--head``), or a host lookup (n-gram,
  suffix: no model). Contradictory flags are refused in one line.
* Lookup methods propose nothing when no match is found. vLLM V1 counts a request's step only
  when it had draft tokens: ``Scheduler.update_from_output`` calls ``make_spec_decoding_stats``
  under ``if scheduled_spec_token_ids:`` and that returns early on ``not num_draft_tokens``
  (vllm 0.33.0 vllm/v1/core/sched/scheduler.py; 0.9.2 has the same ``if``), and NgramProposer
  appends ``[]`` for a request without a match (vllm/v1/spec_decode/ngram_proposer.py), which
  the scheduler never schedules as spec tokens. TensorRT-LLM counts ``numRequestsWithDraftTokens``
  only for requests with ``draft_len > 0`` (tensorrt_llm/_torch/pyexecutor/py_executor.py
  ``_update_iter_stats``). So A / D and 1 + A / S describe the steps that had a draft, while the
  published n-gram figures (Spec-Bench's #Mean Accepted Tokens: generated tokens / target passes)
  and the plan's chain count every decode step. ``lookup_rate`` spreads the accepted tokens over
  every decode step T: rate = A / (k T), i.e. a step without a match is a draft of k rejected at
  its first token, which is what a chain of k with that alpha commits.
* Trees (SGLang topk > 1): the accept length is a tree's, so alpha is inverted with
  ``planner.trees.alpha_from_mean_accepted_length`` on the shape, not with the chain inversion.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.calibration.acceptance_stats import RateFit, fit_from_rate
from planner.calibration.schema import TreeShape
from planner.catalog.lookup import model_name
from planner.errors import SpecplanError
from planner.proposers.methods import METHODS
from planner.speedup import acceptance_rate_from_alpha, check_k
from planner.trees import alpha_from_mean_accepted_length, check_eagle_shape, longest_accepted_length

__all__ = ["HEAD_METHODS", "LOOKUP_METHODS", "MeasuredProposer", "measured_proposer", "decode_steps",
           "lookup_rate", "lookup_fit", "tree_shape", "tree_fit", "method_note"]

HEAD_METHODS = ("eagle", "eagle3")
LOOKUP_METHODS = ("ngram", "suffix")


@dataclass(frozen=True)
class MeasuredProposer:
    """The proposer a server ran, as the calibration file records it."""

    method: str
    head: str | None  # Hub id as typed / absolute folder; the target's id for MTP; None for lookups and drafts


def measured_proposer(method: str | None, head: str | None, draft: str | None, target: str) -> MeasuredProposer:
    """The method and head calibrate's ``--method`` / ``--head`` / ``--draft`` name; one-line refusals.

    Without ``--method``: ``--head`` alone means a head (its catalogued method, else eagle3, as the
    plan reads it), otherwise a draft model.
    """
    if method is None:
        if head is None:
            method = "draft"
        else:
            from planner.proposers.catalog import head_catalog

            entry = head_catalog().index.get(head.strip().lower())
            method = entry.method if entry is not None else "eagle3"
    method = method.strip().lower()
    if method not in METHODS:
        raise SpecplanError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")
    if method == "draft":
        if head is not None:
            raise SpecplanError("--head belongs to --method eagle / eagle3 / mtp; a draft model is --draft")
        if draft is None:
            raise SpecplanError("--method draft needs --draft (the draft model the server ran)")
        return MeasuredProposer("draft", None)
    if draft is not None:
        hint = "; its head is --head" if method in HEAD_METHODS else ""
        raise SpecplanError(f"--method {method} runs no draft model: drop --draft (or use --method draft){hint}")
    if method in LOOKUP_METHODS:
        if head is not None:
            raise SpecplanError(f"--method {method} runs no model: drop --head")
        return MeasuredProposer(method, None)
    if method == "mtp":
        return MeasuredProposer("mtp", model_name(head if head is not None else target))
    if head is None:
        raise SpecplanError(f"--method {method} needs --head: the head the server ran (Hub id or local folder)")
    return MeasuredProposer(method, model_name(head))


def decode_steps(generated_tokens: int, finished_requests: int, accepted: int) -> int:
    """Decode steps T = G - N - A, steps.

    Each request's first token comes from its prefill (N of the G generated tokens) and every
    decode step commits one token of the target's plus the drafts it accepted (A in all).
    """
    return generated_tokens - finished_requests - accepted


def lookup_rate(accepted: int, k: int, steps: int) -> float:
    """Acceptance rate over every decode step, A / (k T): a step without a match proposes k, all rejected."""
    return accepted / (k * steps)


def lookup_fit(accepted: int, k: int, steps: int, round_var: float | None) -> RateFit:
    """alpha of a lookup method from A accepted over T decode steps of k (``lookup_rate``), with its interval."""
    return fit_from_rate(accepted, k * steps, k, steps, round_var)


def tree_shape(num_steps: int | None, topk: int | None, num_draft_tokens: int | None, k: int | None,
               origin: str) -> TreeShape | None:
    """The (num_steps, topk, num_draft_tokens) calibrate was given, completed and checked; None when none was.

    num_steps defaults to k; a chain (topk 1) has num_draft_tokens = num_steps + 1; a tree needs all three.
    """
    if num_steps is None and topk is None and num_draft_tokens is None:
        return None
    steps = num_steps if num_steps is not None else k
    if steps is None:
        raise SpecplanError(f"{origin}: a tree shape needs --num-steps (the server's --speculative-num-steps)")
    if k is not None and k != steps:
        raise SpecplanError(f"{origin}: --k {k} and --num-steps {steps} disagree: a tree is num_steps deep")
    width = topk if topk is not None else (1 if num_draft_tokens in (None, steps + 1) else None)
    if width is None:
        raise SpecplanError(f"{origin}: --num-draft-tokens {num_draft_tokens} is not --num-steps + 1: a tree; "
                            "give --topk (the server's --speculative-eagle-topk)")
    nodes = num_draft_tokens if num_draft_tokens is not None else (steps + 1 if width == 1 else None)
    if nodes is None:
        raise SpecplanError(f"{origin}: --topk {width} needs --num-draft-tokens (the server's "
                            "--speculative-num-draft-tokens)")
    check_eagle_shape(steps, width, nodes)
    check_k(steps)  # a draft deeper than any engine runs is refused before the record would be
    return TreeShape(num_steps=steps, topk=width, num_draft_tokens=nodes)


def tree_fit(fit: RateFit, shape: TreeShape) -> tuple[RateFit, float]:
    """(the fit with alpha inverted under the tree, the mean accepted length tau in tokens per verify step).

    ``fit`` is the chain fit of the same counts at k = num_steps (rate = (tau - 1) / num_steps); each
    end of its interval is mapped back to a rate (acceptance_rate_from_alpha inverts the chain's
    alpha_from_acceptance_rate) and then to a tau, which the tree inversion turns into alpha.
    """
    k = shape.num_steps
    most = longest_accepted_length(k, shape.num_draft_tokens)

    def alpha_of(rate: float) -> float:
        tau = min(max(1.0 + k * rate, 1.0), float(most))
        return alpha_from_mean_accepted_length(tau, k, shape.topk, shape.num_draft_tokens)

    low_rate = float(acceptance_rate_from_alpha(fit.alpha_low, k))
    high_rate = float(acceptance_rate_from_alpha(fit.alpha_high, k))
    alpha = alpha_of(fit.rate)
    tree = RateFit(fit.rate, alpha, min(alpha_of(low_rate), alpha), max(alpha_of(high_rate), alpha), fit.design_effect)
    return tree, 1.0 + k * fit.rate


def method_note(method: str, head: str | None) -> str:
    """The notes' line saying which proposer the figures belong to."""
    what = {"draft": "a draft model", "mtp": "the target's MTP layers", "ngram": "n-gram lookup (no model)",
            "suffix": "suffix lookup (no model)"}.get(method, f"{method} head")
    return f"proposal method {method}: {what}" + (f" ({head})" if head else "")


def lookup_steps(before: tuple[int, int] | None, after: tuple[int, int] | None, single_scrape: bool,
                 accepted: int, drafts: int | None, origin: str, notes: list[str]) -> int | None:
    """Decode steps T of the window from (generated tokens, finished requests) scrapes, or None (noted).

    None when the server's scrapes lack the totals or they do not fit the spec-decode counters
    (T below the steps that had a draft: requests still in flight at a scrape): alpha then
    describes only the steps that found a match, an upper bound on the every-step alpha.
    """
    unknown = ("the steps without a match are not counted by the spec-decode counters, so alpha describes only "
               "the steps that found one (an upper bound on the every-step alpha the plan uses)")
    if after is None or (not single_scrape and before is None):
        notes.append(f"no generation_tokens / request_success counters: {unknown}")
        return None
    generated, finished = after if before is None else (after[0] - before[0], after[1] - before[1])
    steps = decode_steps(generated, finished, accepted)
    if generated < 0 or finished < 0 or steps <= 0 or (drafts is not None and steps < drafts):
        notes.append(f"{origin}: {generated} generated tokens of {finished} finished requests leave {steps} decode "
                     f"steps for {drafts} steps with a draft (requests in flight at a scrape?): {unknown}")
        return None
    notes.append(f"decode steps T = generated - finished requests - accepted = {generated} - {finished} - {accepted} "
                 f"= {steps}; {steps - (drafts or 0)} found no match and proposed nothing (vLLM counts only steps "
                 "with draft tokens: Scheduler.update_from_output, make_spec_decoding_stats); requests must start "
                 "and finish inside the window for N to count their prefill tokens")
    notes.append(f"mean accepted length over every decode step 1 + A / T = {1 + accepted / steps:.4f} (Spec-Bench's "
                 "definition for prompt lookup); alpha from the rate A / (k T)")
    return steps
