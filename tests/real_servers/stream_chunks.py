#!/usr/bin/env python3
"""Print the SSE bytes of one streamed /v1/completions answer, built with the server's own protocol classes.

Run with the Python of a vLLM or SGLang venv from .ci/server_venvs.sh: ``python stream_chunks.py
vllm|sglang TOKENS_JSON``. TOKENS_JSON is a list of chunk texts; the chunks, the final usage chunk
and ``[DONE]`` are made and serialised exactly as the server's stream generator does:

* vLLM 0.33 (vllm/entrypoints/openai/completion/serving.py, completion_stream_generator):
  ``CompletionStreamResponse(id, object, created, model, choices=[CompletionResponseStreamChoice(
  index, text, logprobs, finish_reason, stop_reason)])`` dumped with ``exclude_unset=True``; with
  ``stream_options.include_usage`` a last chunk with ``choices=[]``, ``usage=UsageInfo(...)`` and
  ``metrics=PerRequestMetrics(speculative_decoding=SpeculativeDecodingMetrics(...))``, dumped with
  ``exclude_unset=False, exclude_none=True``; then ``data: [DONE]``. A speculative step's several
  tokens arrive as one chunk, so completion_tokens (given) exceeds the chunk count.
* SGLang 0.5.23 (sglang/srt/entrypoints/openai/serving_completions.py, _generate_completion_stream):
  ``CompletionStreamResponse(id, created, object, choices=[CompletionResponseStreamChoice(index,
  text, logprobs, finish_reason, matched_stop)], model)`` dumped with ``model_dump_json()``; the
  usage chunk ``CompletionStreamResponse(id, created, choices=[], model, usage=UsageInfo)`` with
  ``exclude_none=True``; then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import sys

MODEL = "specplan-test/target"
PROMPT_TOKENS = 7


def _vllm(texts: list[str], completion_tokens: int, drafted: int, accepted: int, steps: int) -> list[str]:
    from vllm.entrypoints.generate.base.protocol import PerRequestMetrics, SpeculativeDecodingMetrics
    from vllm.entrypoints.openai.completion.protocol import CompletionResponseStreamChoice, CompletionStreamResponse
    from vllm.entrypoints.serve.engine.protocol import UsageInfo  # what completion/serving.py imports

    out = []
    for i, text in enumerate(texts):
        finish = "length" if i == len(texts) - 1 else None
        chunk = CompletionStreamResponse(id="cmpl-1", object="text_completion", created=1, model=MODEL, choices=[
            CompletionResponseStreamChoice(index=0, text=text, logprobs=None, finish_reason=finish, stop_reason=None)])
        out.append(f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n")
    k = 4
    spec = SpeculativeDecodingMetrics(mean_acceptance_length=1 + accepted / steps, draft_acceptance_rate=accepted / drafted,
                                      acceptance_histogram=[0] * (k + 1), num_spec_steps=steps,
                                      num_accepted_draft_tokens=accepted, num_draft_tokens=drafted, num_spec_tokens=k)
    usage = UsageInfo(prompt_tokens=PROMPT_TOKENS, completion_tokens=completion_tokens,
                      total_tokens=PROMPT_TOKENS + completion_tokens)
    final = CompletionStreamResponse(id="cmpl-1", created=1, model=MODEL, choices=[], usage=usage,
                                     system_fingerprint=None, metrics=PerRequestMetrics(speculative_decoding=spec))
    out.append(f"data: {final.model_dump_json(exclude_unset=False, exclude_none=True)}\n\n")
    return out + ["data: [DONE]\n\n"]


def _sglang(texts: list[str], completion_tokens: int) -> list[str]:
    from sglang.srt.entrypoints.openai.protocol import CompletionResponseStreamChoice, CompletionStreamResponse, UsageInfo

    out = []
    for i, text in enumerate(texts):
        finish = "length" if i == len(texts) - 1 else None
        choice = CompletionResponseStreamChoice(index=0, text=text, logprobs=None, finish_reason=finish, matched_stop=None)
        chunk = CompletionStreamResponse(id="req-1", created=1, object="text_completion", choices=[choice], model=MODEL)
        out.append(f"data: {chunk.model_dump_json()}\n\n")
    usage = UsageInfo(prompt_tokens=PROMPT_TOKENS, completion_tokens=completion_tokens,
                      total_tokens=PROMPT_TOKENS + completion_tokens)
    final = CompletionStreamResponse(id="req-1", created=1, choices=[], model=MODEL, usage=usage)
    out.append(f"data: {final.model_dump_json(exclude_none=True)}\n\n")
    return out + ["data: [DONE]\n\n"]


def main() -> None:
    server, texts = sys.argv[1], json.loads(sys.argv[2])
    completion_tokens = int(sys.argv[3])
    if server == "vllm":
        lines = _vllm(texts, completion_tokens, drafted=int(sys.argv[4]), accepted=int(sys.argv[5]), steps=int(sys.argv[6]))
    else:
        lines = _sglang(texts, completion_tokens)
    sys.stdout.write("".join(lines))


if __name__ == "__main__":
    main()
