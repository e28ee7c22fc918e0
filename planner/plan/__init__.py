"""estimate (one configuration) and recommend (ranked search) on top of fit, cost model, draft loops and priors.

plan.common holds what both share; plan.estimate and plan.recommend one command each.
"""

from planner.acceptance import AlphaChoice, choose_alpha
from planner.plan.common import K_SEARCH
from planner.plan.estimate import Estimate, EstimateInputs, estimate
from planner.plan.recommend import Candidate, Recommendation, RecommendInputs, candidate_to_dict, find_model_spec, recommend
from planner.verdicts import MIN_WORTHWHILE_SPEEDUP

__all__ = [
    "AlphaChoice", "EstimateInputs", "Estimate", "estimate", "RecommendInputs", "Candidate", "Recommendation", "recommend",
    "K_SEARCH", "MIN_WORTHWHILE_SPEEDUP", "choose_alpha", "candidate_to_dict", "find_model_spec",
]
