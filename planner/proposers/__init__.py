"""Proposal methods side by side: draft models, EAGLE/EAGLE-3 heads, MTP layers, n-gram and suffix lookup.

Footprint layer: what each proposer weighs, caches and reads per proposal step. The cost model
prices these figures; the catalogue of published heads is ``head_db/`` (planner.proposers.catalog).
"""
