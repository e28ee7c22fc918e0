"""Each engine's draft loop: drafted tokens, draft passes and accepted tokens per round, and the speedup.

Layer: beside planner.speedup and planner.priors (it imports catalog-level code only); the search
(planner.search) prices rounds with it. Data: loops.yaml (rules, defaults and per-round costs per
engine and release line, with sources).
"""

from planner.draftloop.confidence import ConfidenceSplit, confidence_split
from planner.draftloop.convert import LoopCounts, alpha_from_loop_counts, loop_acceptance_rate
from planner.draftloop.data import LoopSpec, default_kappa, engine_loop, loop_table
from planner.draftloop.renewal import LoopRound, loop_round, renewal_speedup
from planner.draftloop.rounds import RoundDist, RoundMeans, expected_verify_cost, round_distribution, round_means
from planner.draftloop.schedules import stationary_weights, transient_weights

__all__ = [
    "ConfidenceSplit", "confidence_split", "LoopCounts", "alpha_from_loop_counts", "loop_acceptance_rate",
    "LoopSpec", "default_kappa", "engine_loop", "loop_table", "LoopRound", "loop_round", "renewal_speedup",
    "RoundDist", "RoundMeans", "expected_verify_cost", "round_distribution", "round_means",
    "stationary_weights", "transient_weights",
]
