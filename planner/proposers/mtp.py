"""MTP modules shipped inside a checkpoint (DeepSeek-V3/R1 nextn layers): counts from the target's own layer.

Each module (DeepSeek-V3 Technical Report, arXiv:2412.19437, section 2.2; README_WEIGHTS.md) is
enorm + hnorm (RMSNorm of the embedding and of the previous hidden state), eh_proj (2d -> d, no
bias), one full decoder layer of the model and shared_head.norm; the embedding and the output head
are the target's. The decoder layer is the target's layer exactly, so its counts come from
planner.footprint: MLA or GQA attention, and an MoE layer when the model has experts (the nextn
layer sits after the leading dense layers) or its dense MLP otherwise.
"""

from __future__ import annotations

from planner.catalog.precisions import KvFormat, WeightFormat
from planner.catalog.schemas import ModelSpec
from planner.footprint import attention_params, dense_mlp_params, kv_elements_per_token_per_layer, moe_layer_params
from planner.proposers.costs import HeadParams, ProposerMemory, StepCost, head_weight_bytes, step_cost
from planner.proposers.layers import gqa_attention_flops, linear_params, mla_attention_flops, rms_norm_params

__all__ = ["mtp_module_params", "mtp_params", "mtp_memory", "mtp_step_cost", "mtp_attention_flops"]

_MTP_INPUTS = 2  # normed embedding and normed previous hidden state, concatenated into eh_proj
_MTP_EXTRA_NORMS = 3  # enorm, hnorm, shared_head.norm


def mtp_module_params(m: ModelSpec) -> HeadParams:
    """One MTP module of model ``m`` by component, shared embedding and head excluded, in parameters."""
    d = m.hidden_size
    if m.moe is not None:
        mlp, mlp_active = moe_layer_params(m, m.moe.num_experts), moe_layer_params(m, m.moe.experts_per_token)
    else:
        mlp = mlp_active = dense_mlp_params(m, m.intermediate_size)
    return HeadParams(
        fusion=linear_params(_MTP_INPUTS * d, d),
        attention=attention_params(m), mlp=mlp, mlp_active=mlp_active,
        norms=rms_norm_params(d, m.norms_per_layer + _MTP_EXTRA_NORMS),
    )


def mtp_params(m: ModelSpec, layers: int) -> HeadParams:
    """``layers`` MTP modules (num_nextn_predict_layers) of model ``m``, in parameters."""
    one = mtp_module_params(m)
    return HeadParams(**{k: v * layers for k, v in one.model_dump().items()})


def _kv_per_token(m: ModelSpec, layers: int, kv: KvFormat, tp: int) -> float:
    return layers * kv_elements_per_token_per_layer(m, tp) * kv.bytes_per_element


def mtp_memory(m: ModelSpec, layers: int, fmt: WeightFormat, kv: KvFormat, tp: int = 1) -> ProposerMemory:
    """Weights of the MTP modules and their KV cache per token on one GPU, in bytes.

    Weight bytes are the whole modules' on one GPU (tensor/expert parallel splits are the memory
    model's business, as for the target).
    """
    return ProposerMemory(weight_bytes=head_weight_bytes(mtp_params(m, layers), fmt, shares_embedding=True),
                          kv_bytes_per_token=_kv_per_token(m, layers, kv, tp))


def mtp_attention_flops(m: ModelSpec, context_tokens: int) -> float:
    """Attention FLOPs of one MTP layer for one query token over the context (MLA absorbed or GQA)."""
    if m.mla is not None:
        return mla_attention_flops(context_tokens, m.num_attention_heads, m.mla.kv_lora_rank, m.mla.qk_rope_head_dim)
    return gqa_attention_flops(context_tokens, m.num_attention_heads, m.head_dim)


def mtp_step_cost(m: ModelSpec, fmt: WeightFormat, kv: KvFormat, context_tokens: int, tp: int = 1) -> StepCost:
    """One step through one MTP module for one sequence: eh_proj, the layer's active weights, the target's lm_head."""
    p = mtp_module_params(m)
    linear = p.fusion + p.attention + p.mlp_active
    lm_head = m.vocab_size * m.hidden_size
    weights = head_weight_bytes(p, fmt, shares_embedding=True, linear_params=linear, lm_head_params=lm_head)
    return step_cost(weights, _kv_per_token(m, 1, kv, tp), context_tokens, linear + lm_head,
                     mtp_attention_flops(m, context_tokens))
