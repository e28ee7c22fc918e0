"""A speculative plan for more than one sequence says how far its figure is from published runs under load."""

from __future__ import annotations

import json

from planner.cli import main
from planner.outputs.cautions import batch_caution

L31 = "meta-llama/Llama-3.1-8B-Instruct"


def test_only_speculative_plans_under_load_carry_it():
    assert batch_caution(1, True) is None and batch_caution(32, False) is None
    note = batch_caution(32, True)
    assert note is not None and note.startswith("batch 32:") and "specplan validate" in note and "\n" not in note


def test_estimate_and_recommend_say_it_at_batch_above_one(runner):
    args = ["--target", L31, "--gpu", "h100-sxm"]
    loaded = json.loads(runner.invoke(main, ["estimate", *args, "--method", "eagle3", "--batch", "16", "--format",
                                             "json"]).stdout)
    single = json.loads(runner.invoke(main, ["estimate", *args, "--method", "eagle3", "--format", "json"]).stdout)
    plain = json.loads(runner.invoke(main, ["estimate", *args, "--batch", "16", "--format", "json"]).stdout)
    assert any(c.startswith("batch 16:") for c in loaded["cautions"])
    assert not any(c.startswith("batch") for c in single["cautions"] + plain["cautions"])
    rec = json.loads(runner.invoke(main, ["recommend", *args, "--batch", "16", "--format", "json"]).stdout)
    for c in rec["candidates"]:
        assert any(n.startswith("batch 16:") for n in c["cautions"]) == (c["method"] is not None and c["fits"])
