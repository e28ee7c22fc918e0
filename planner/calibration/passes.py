"""One model pass and the lossless speculative round, on torch + transformers (the probe's loop).

Kept apart from the probe's orchestration (planner/calibration/probe.py: loading, budget, grid,
fitting) so that the speculative loop reads in one place, as in gpt-fast.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from planner.calibration.schema import ModelIdentity

__all__ = ["LoadedModel", "Stream", "time_pass", "speculative_round", "generate_rounds", "WARMUP", "REPEATS"]

WARMUP = 2  # untimed passes before the timed ones (allocator, kernel selection)
REPEATS = 5  # timed passes per point; the fit uses their median


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run, with how it was identified."""

    model: Any
    identity: ModelIdentity
    tokenizer: Any | None
    vocab_size: int


def _sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(model: Any, ids: Any, cache: Any) -> tuple[Any, Any]:
    """One cached forward; returns (logits, cache) on transformers 4.x and 5.x alike.

    transformers 5.x renamed the forward argument and output field ``past_key_values``
    to ``cache`` (the old name warns, then goes in 5.40); 4.x knows only the old one.
    The argument name is read from the model's own signature, not from a version number.
    """
    kwargs = {_cache_argument(type(model)): cache} if cache is not None else {}
    out = model(ids, use_cache=True, **kwargs)
    keys = out.keys()
    return out.logits, (out["cache"] if "cache" in keys else out.get("past_key_values"))


@functools.lru_cache(maxsize=None)
def _cache_argument(model_class: type) -> str:
    """``cache`` where the model's forward takes it (transformers >= 5.x), else ``past_key_values``."""
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _crop(cache: Any, keep: int) -> None:
    """Drop cached positions beyond ``keep`` (transformers takes a negative count to remove)."""
    extra = cache.get_seq_length() - keep
    if extra > 0:
        cache.crop(-extra)


def time_pass(m: LoadedModel, torch: Any, device: Any, batch: int, context: int, new_tokens: int,
              repeats: int = REPEATS, warmup: int = WARMUP,
              out_of_time: Callable[[], bool] | None = None) -> list[float]:
    """Wall times (s) of one forward over ``new_tokens`` per sequence after ``context`` cached tokens.

    ``out_of_time`` ends the repeats early (after at least one timed pass) once the budget is spent.
    """
    gen = torch.Generator(device="cpu").manual_seed(batch * 7919 + context * 31 + new_tokens)
    ids = torch.randint(0, m.vocab_size, (batch, context + new_tokens), generator=gen).to(device)
    times = []
    with torch.inference_mode():
        cache = _forward(m.model, ids[:, :context], None)[1] if context else None
        for i in range(warmup + repeats):
            _sync(torch, device)
            start = time.perf_counter()
            _, cache = _forward(m.model, ids[:, context:], cache)
            _sync(torch, device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
            if cache is not None:
                _crop(cache, context)
                if not context:
                    cache = None
            if times and out_of_time is not None and out_of_time():
                break
    return times


def _probs(torch: Any, logits: Any, temperature: float) -> Any:
    if temperature <= 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits.float() / temperature, dim=-1)


def _sample(torch: Any, probs: Any, gen: Any) -> int:
    return int(torch.multinomial(probs.float().cpu(), 1, generator=gen).item())


@dataclass
class Stream:
    """One sequence being decoded speculatively: committed ids and both caches."""

    ids: list[int]
    target_cache: Any = None
    draft_cache: Any = None


def _feed(model: Any, torch: Any, device: Any, tokens: list[int], cache: Any) -> tuple[Any, Any]:
    logits, cache = _forward(model, torch.tensor([tokens], device=device), cache)
    return logits[0], cache


def speculative_round(target: LoadedModel, draft: LoadedModel, s: Stream, k: int, temperature: float,
                      torch: Any, device: Any, gen: Any) -> tuple[int, list[int]]:
    """One lossless speculative round (Leviathan et al. 2023; Chen et al. 2023).

    The draft proposes k tokens from q; the target scores them in one pass giving p;
    token i is kept with probability min(1, p(x_i)/q(x_i)) (greedy: iff it is p's
    argmax); at the first rejection a token is drawn from norm(max(0, p - q)); if all
    k survive, a bonus token is drawn from p. Returns (accepted, committed tokens).
    """
    d_len = 0 if s.draft_cache is None else s.draft_cache.get_seq_length()
    t_len = 0 if s.target_cache is None else s.target_cache.get_seq_length()
    # draft: catch up on committed tokens it has not seen, then propose k tokens
    logits, s.draft_cache = _feed(draft.model, torch, device, s.ids[d_len:], s.draft_cache)
    drafted, q = [], []
    for i in range(k):
        qi = _probs(torch, logits[-1], temperature)
        x = int(qi.argmax()) if temperature <= 0 else _sample(torch, qi, gen)
        drafted.append(x)
        q.append(qi)
        if i < k - 1:
            logits, s.draft_cache = _feed(draft.model, torch, device, [x], s.draft_cache)
    # target: one pass over the uncached committed tokens plus the k drafts
    fresh = s.ids[t_len:]
    logits, s.target_cache = _feed(target.model, torch, device, fresh + drafted, s.target_cache)
    p = [_probs(torch, logits[len(fresh) - 1 + i], temperature) for i in range(k + 1)]
    committed = []
    for i, x in enumerate(drafted):
        if temperature <= 0:
            keep = x == int(p[i].argmax())
        else:
            ratio = float(p[i][x]) / max(float(q[i][x]), 1e-30)
            keep = float(torch.rand(1, generator=gen)) < min(1.0, ratio)
        if not keep:
            residual = torch.clamp(p[i].float() - q[i].float(), min=0)
            residual = residual / residual.sum() if float(residual.sum()) > 0 else p[i].float()
            fix = int(p[i].argmax()) if temperature <= 0 else _sample(torch, residual, gen)
            committed.append(fix)
            break
        committed.append(x)
    else:
        committed.append(int(p[k].argmax()) if temperature <= 0 else _sample(torch, p[k], gen))
    accepted = len(committed) - 1
    n = len(s.ids)
    s.ids.extend(committed)
    # both caches may keep the prefix plus the accepted drafts; the last committed token is fed next round
    _crop(s.target_cache, n + accepted)
    _crop(s.draft_cache, min(n + accepted, s.draft_cache.get_seq_length()))
    return accepted, committed


def generate_rounds(target: LoadedModel, draft: LoadedModel, prompt_ids: list[int], k: int, temperature: float,
                    max_new_tokens: int, torch: Any, device: Any, gen: Any) -> Iterator[tuple[int, int]]:
    """Speculative rounds over one prompt: yields (accepted, proposed) until max_new_tokens are committed."""
    s = Stream(ids=list(prompt_ids))
    produced = 0
    with torch.inference_mode():
        while produced < max_new_tokens:
            accepted, committed = speculative_round(target, draft, s, k, temperature, torch, device, gen)
            produced += len(committed)
            yield accepted, k
