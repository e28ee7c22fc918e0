"""Proposal methods priced side by side: EAGLE/EAGLE-3 heads, MTP modules and host lookups next to draft models.

Search layer: a proposer's step is priced by the cost model's operators (its profile from
planner.costmodel.proposer_profile), its round by planner.search.price_rounds (chains) or
planner.methods.trees (SGLang / TensorRT-LLM token trees), its acceptance by the method priors
(planner.priors.methods) or what the user measured.
"""
