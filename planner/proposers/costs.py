"""What a proposer holds in GPU memory and what one proposal step reads and computes (named breakdowns)."""

from __future__ import annotations

from pydantic import Field

from planner.catalog.precisions import WeightFormat
from planner.catalog.schemas import Frozen
from planner.proposers.layers import matmul_flops

__all__ = ["HeadParams", "ProposerMemory", "StepCost", "head_weight_bytes", "step_cost"]

_HIGH_PRECISION_BYTES = 2  # as planner.footprint: non-GGUF quantizers keep lm_head, embeddings, norms in 16 bits


class HeadParams(Frozen):
    """Parameters of a proposer's own weights by component (checkpoint contents), in parameters.

    ``fusion`` is EAGLE's fc / MTP's eh_proj; ``mlp_active`` the MLP weights one token reads (all of
    them for a dense layer, the router, top-k and shared experts for MoE); ``embedding`` a copy of the
    target's table the checkpoint stores (EAGLE-1 files do, EAGLE-3 files do not); ``vocab_map_bytes``
    EAGLE-3's d2t/t2d buffers (bytes, not parameters).
    """

    fusion: int = Field(ge=0)
    attention: int = Field(ge=0)
    mlp: int = Field(ge=0)
    mlp_active: int = Field(ge=0)
    norms: int = Field(ge=0)
    lm_head: int = Field(0, ge=0)
    embedding: int = Field(0, ge=0)
    vocab_map_bytes: int = Field(0, ge=0)

    @property
    def linear(self) -> int:
        """Quantizable matrices of the head (fusion, attention, MLP), in parameters."""
        return self.fusion + self.attention + self.mlp

    @property
    def total(self) -> int:
        """Every parameter the checkpoint stores."""
        return self.linear + self.norms + self.lm_head + self.embedding

    def resident(self, shares_embedding: bool) -> int:
        """Parameters the engine holds beyond the target's: the stored embedding copy dropped when shared."""
        return self.total - (self.embedding if shares_embedding else 0)


class ProposerMemory(Frozen):
    """GPU memory of one proposer on one GPU: weights beyond the target's, and its own KV cache per token."""

    weight_bytes: float = Field(ge=0, description="bytes of weights the proposer adds")
    kv_bytes_per_token: float = Field(ge=0, description="bytes its own layers cache per context token")
    host_only: bool = False


class StepCost(Frozen):
    """One proposal step of one sequence (one token through the proposer): bytes read and FLOPs."""

    weight_bytes_read: float = Field(ge=0, description="weight bytes streamed, bytes")
    kv_bytes_read: float = Field(ge=0, description="the proposer's own KV cache read over the context, bytes")
    flops: float = Field(ge=0, description="matmul plus attention FLOPs")

    @property
    def streamed_bytes(self) -> float:
        """Weights plus KV cache read per step, in bytes."""
        return self.weight_bytes_read + self.kv_bytes_read


def _high(fmt: WeightFormat) -> float:
    return fmt.bytes_per_weight if fmt.kind == "gguf" else max(fmt.bytes_per_weight, _HIGH_PRECISION_BYTES)


def head_weight_bytes(p: HeadParams, fmt: WeightFormat, shares_embedding: bool, linear_params: int | None = None,
                      lm_head_params: int | None = None) -> float:
    """Bytes of a proposer's weights at ``fmt``: matrices at the format, lm_head/embedding/norms in 16 bits.

    As planner.footprint.weight_bytes: AWQ/GPTQ/FP8 keep the vocabulary matrices and norms in 16 bits,
    GGUF applies its figure to all. ``linear_params`` / ``lm_head_params`` override the stored counts
    (the active experts, a reused target lm_head) when pricing what one step reads. In bytes.
    """
    linear = p.linear if linear_params is None else linear_params
    lm_head = p.lm_head if lm_head_params is None else lm_head_params
    embedding = 0 if shares_embedding else p.embedding
    return linear * fmt.bytes_per_weight + (lm_head + embedding + p.norms) * _high(fmt) + p.vocab_map_bytes


def step_cost(weight_bytes_read: float, kv_bytes_per_token: float, context_tokens: int, matmul_params: int,
              attention_flops: float) -> StepCost:
    """One proposal step: the weights read once, the own KV cache over ``context_tokens``, 2 FLOPs per weight."""
    return StepCost(weight_bytes_read=weight_bytes_read, kv_bytes_read=kv_bytes_per_token * context_tokens,
                    flops=matmul_flops(matmul_params) + attention_flops)
