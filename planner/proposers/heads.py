"""EAGLE-1/2 and EAGLE-3 heads: parameter counts, memory and per-step cost from the head's shapes.

Structure (SafeAILab/EAGLE): EAGLE-1 (eagle/model/cnets1.py) is fc(2d -> d, bias) over [token
embedding; target's last hidden state] and one decoder layer whose first input_layernorm is skipped,
logits through the target's lm_head; the published files also store a copy of the embedding.
EAGLE-3 (eagle/model/cnets.py) is fc(3*d_target -> d, no bias) over the target's low/mid/high hidden
states, one decoder layer whose q/k/v read [input_layernorm(embedding); hidden_norm(feature)] (2d),
post_attention_layernorm, a final norm and its own lm_head over draft_vocab_size tokens with the
d2t/t2d buffers; the embedding is the target's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from planner.catalog.precisions import KvFormat, WeightFormat
from planner.catalog.schemas import Frozen
from planner.proposers.costs import HeadParams, ProposerMemory, StepCost, head_weight_bytes, step_cost
from planner.proposers.layers import (
    gated_mlp_params,
    gqa_attention_flops,
    head_attention_params,
    kv_bytes_per_token,
    linear_params,
    rms_norm_params,
    vocab_map_bytes,
)
from planner.proposers.methods import method_info

__all__ = ["HeadLayout", "eagle_params", "eagle3_params", "head_params", "head_memory", "head_step_cost"]

_EAGLE3_FEATURES = 3  # low, mid and high target layers (eagle_aux_hidden_state_layer_ids)
_EAGLE1_INPUTS = 2  # token embedding and the target's last hidden state
_EAGLE3_ATTENTION_INPUTS = 2  # token embedding and the fused feature
_EAGLE3_LAYER_NORMS = 3  # hidden_norm, input_layernorm, post_attention_layernorm
_EAGLE1_LAYER_NORMS = 1  # post_attention_layernorm (layer 0 skips input_layernorm)
_FINAL_NORMS = 1


class HeadLayout(Frozen):
    """Shapes of a feature-level head (from its config.json), in elements."""

    method: Literal["eagle", "eagle3"]
    hidden_size: int = Field(gt=0)
    target_hidden_size: int = Field(gt=0, description="width of the target's hidden states the fc reads")
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_layers: int = Field(1, gt=0, description="decoder layers of the head (1 in every published head)")
    vocab_size: int = Field(gt=0, description="the target's vocabulary (embedding rows)")
    draft_vocab_size: int | None = Field(None, gt=0, description="EAGLE-3 lm_head rows; None for EAGLE-1/2")
    stores_embedding: bool = Field(False, description="the checkpoint holds its own copy of the embedding")
    uses_aux_hidden_states: bool = Field(
        True, description="EAGLE-3 fuses low/mid/high target features through fc; false (eagle_config."
        "use_aux_hidden_state, nvidia/gpt-oss-120b-Eagle3-v2) reads the last hidden state directly, no fc")

    @model_validator(mode="after")
    def _consistent(self) -> HeadLayout:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError("num_attention_heads must be a multiple of num_kv_heads")
        if self.method == "eagle3" and self.draft_vocab_size is None:
            raise ValueError("an EAGLE-3 head needs draft_vocab_size (its lm_head rows)")
        if self.method == "eagle" and self.draft_vocab_size is not None:
            raise ValueError("an EAGLE-1/2 head has no lm_head of its own (draft_vocab_size must be unset)")
        if self.draft_vocab_size is not None and self.draft_vocab_size > self.vocab_size:
            raise ValueError("draft_vocab_size exceeds vocab_size")
        return self


def eagle3_params(h: HeadLayout) -> HeadParams:
    """EAGLE-3 head by component, in parameters (d2t/t2d buffers in bytes)."""
    assert h.draft_vocab_size is not None
    d = h.hidden_size
    attention = h.num_layers * head_attention_params(_EAGLE3_ATTENTION_INPUTS * d, d, h.num_attention_heads,
                                                     h.num_kv_heads, h.head_dim)
    mlp = h.num_layers * gated_mlp_params(d, h.intermediate_size)
    embedding = h.vocab_size * d if h.stores_embedding else 0
    return HeadParams(
        fusion=linear_params(_EAGLE3_FEATURES * h.target_hidden_size, d) if h.uses_aux_hidden_states else 0,
        attention=attention, mlp=mlp, mlp_active=mlp,
        norms=rms_norm_params(d, h.num_layers * _EAGLE3_LAYER_NORMS + _FINAL_NORMS),
        lm_head=linear_params(d, h.draft_vocab_size), embedding=embedding,
        vocab_map_bytes=vocab_map_bytes(h.draft_vocab_size, h.vocab_size),
    )


def eagle_params(h: HeadLayout) -> HeadParams:
    """EAGLE-1/2 head by component (no lm_head: the target's is used), in parameters."""
    d = h.hidden_size
    attention = h.num_layers * head_attention_params(d, d, h.num_attention_heads, h.num_kv_heads, h.head_dim)
    mlp = h.num_layers * gated_mlp_params(d, h.intermediate_size)
    return HeadParams(
        fusion=linear_params(_EAGLE1_INPUTS * h.target_hidden_size, d, bias=True),
        attention=attention, mlp=mlp, mlp_active=mlp,
        norms=rms_norm_params(d, _EAGLE1_LAYER_NORMS + 2 * (h.num_layers - 1)),
        embedding=h.vocab_size * d if h.stores_embedding else 0,
    )


def head_params(h: HeadLayout) -> HeadParams:
    """The head's parameters by its method."""
    return eagle3_params(h) if h.method == "eagle3" else eagle_params(h)


def head_memory(h: HeadLayout, fmt: WeightFormat, kv: KvFormat, tp: int = 1) -> ProposerMemory:
    """Weights the head adds to the target (embedding shared as vLLM does) and its KV per token, in bytes."""
    p = head_params(h)
    shares = method_info(h.method).reuses_target_embedding
    return ProposerMemory(
        weight_bytes=head_weight_bytes(p, fmt, shares_embedding=shares),
        kv_bytes_per_token=kv_bytes_per_token(h.num_layers, h.num_kv_heads, h.head_dim, kv.bytes_per_element, tp),
    )


def head_step_cost(h: HeadLayout, fmt: WeightFormat, kv: KvFormat, context_tokens: int,
                   first_step: bool = True, tp: int = 1) -> StepCost:
    """One proposal step of the head for one sequence: weights read, own KV read, FLOPs.

    The fc runs on the first step only (later steps feed the head's own hidden state back); an
    EAGLE-1/2 step reads the target's lm_head (vocab_size x hidden_size) for its logits. The
    embedding is a lookup (one row), not streamed.
    """
    p = head_params(h)
    lm_head = p.lm_head if h.method == "eagle3" else h.vocab_size * h.hidden_size
    linear = p.attention + p.mlp + (p.fusion if first_step else 0)
    weights = head_weight_bytes(p.model_copy(update={"embedding": 0, "vocab_map_bytes": 0}), fmt,
                                shares_embedding=True, linear_params=linear, lm_head_params=lm_head)
    kv_token = kv_bytes_per_token(h.num_layers, h.num_kv_heads, h.head_dim, kv.bytes_per_element, tp)
    attention = h.num_layers * gqa_attention_flops(context_tokens, h.num_attention_heads, h.head_dim)
    return step_cost(weights, kv_token, context_tokens, linear + lm_head, attention)
