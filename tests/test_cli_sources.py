"""`specplan gpus --sources ID` and `specplan models --sources ID`: one entry with its sources."""

from __future__ import annotations

import json

import pytest
import yaml

from planner.catalog.schemas import GpuSpec
from planner.cli import main
from planner.outputs.sources_view import gpu_sources_to_dict, print_gpu_sources
from tests.conftest import make_model

# A hand-written entry: two items, each figure listed against the item that gives it, TDP weak.
CARD = GpuSpec(
    id="card-80", name="Test Card 80GB", aliases=["TC80"], vendor="nvidia", family="hopper", segment="datacenter",
    memory_gib=80, memory_type="HBM3", memory_bandwidth_gb_s=3350, fp16_tensor_tflops=989.4, tdp_w=700,
    interconnect={"kind": "nvlink", "generation": "NVLink 4", "bandwidth_gb_s": 900},
    source=["vendor datasheet: 80 GB HBM3, 3.35 TB/s, 989.4 TFLOPS BF16 dense, NVLink 900 GB/s",
            "reseller page: 700 W"],
    figure_sources={"memory_gib": [1], "memory_bandwidth_gb_s": [1], "fp16_tensor_tflops": [1],
                    "interconnect": [1], "tdp_w": [2]},
    weak_figures=["tdp_w"],
)


def _run(runner, *args):
    return runner.invoke(main, list(args))


def test_gpu_view_lists_each_set_figure_with_its_items_and_weakness():
    data = gpu_sources_to_dict(CARD)
    rows = {r["figure"]: r for r in data["figures"]}
    # fp32, fp8, int8, fp4 and usable memory are not set, so they are not shown.
    assert list(rows) == ["memory_gib", "memory_bandwidth_gb_s", "fp16_tensor_tflops", "tdp_w", "interconnect"]
    assert rows["tdp_w"] == {"figure": "tdp_w", "value": 700, "unit": "W", "source_items": [2],
                             "sources": ["reseller page: 700 W"], "weak": True}
    assert rows["memory_bandwidth_gb_s"]["sources"] == [CARD.source[0]] and not rows["memory_bandwidth_gb_s"]["weak"]
    assert rows["interconnect"]["value"] == {"kind": "nvlink", "generation": "NVLink 4", "bandwidth_gb_s": 900}
    assert data["unsourced_figures"] == []


def test_gpu_view_table_marks_weak_and_unsourced(capsys):
    unsourced = CARD.model_copy(update={"figure_sources": {k: v for k, v in CARD.figure_sources.items()
                                                           if k != "fp16_tensor_tflops"}})
    print_gpu_sources(gpu_sources_to_dict(unsourced))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "card-80 (Test Card 80GB)"
    by_figure = {line.split()[0]: line.split()[1:] for line in lines[3:8]}
    assert by_figure["tdp_w"] == ["700", "W", "2", "weak"]
    assert by_figure["fp16_tensor_tflops"] == ["989.4", "TFLOPS", "-", "unsourced"]
    assert by_figure["interconnect"] == ["nvlink", "NVLink", "4", "900", "GB/s", "1"]
    assert "  2. reseller page: 700 W" in lines
    assert lines[-1] == "warning: no source item is listed for fp16_tensor_tflops (figure_sources)"


@pytest.mark.parametrize("name", ["h100-sxm", "NVIDIA H100 80GB HBM3", "  H100-SXM "])
def test_gpus_sources_json_by_id_or_alias(runner, name):
    result = _run(runner, "gpus", "--sources", name, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == "h100-sxm"
    rows = {r["figure"]: r for r in data["figures"]}
    # NVIDIA H100 datasheet, SXM column: 3.35 TB/s, 700 W; sparsity figures halved (1979 -> 989).
    assert rows["memory_bandwidth_gb_s"]["value"] == 3350 and rows["tdp_w"]["value"] == 700
    assert rows["fp16_tensor_tflops"]["value"] == pytest.approx(989, abs=1)
    assert data["source"] and all(s in data["source"] for r in data["figures"] for s in r["sources"])


def test_gpus_sources_table_and_yaml(runner):
    table = _run(runner, "gpus", "--sources", "h100-sxm")
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("h100-sxm (NVIDIA H100 SXM5 80GB)\n") and "\nsources:\n  1. " in table.stdout
    assert "memory_bandwidth_gb_s" in table.stdout and "3350 GB/s" in table.stdout
    data = yaml.safe_load(_run(runner, "gpus", "--sources", "h100-sxm", "--format", "yaml").stdout)
    assert data["name"] == "NVIDIA H100 SXM5 80GB"


def test_models_sources_json_gives_computed_and_published_counts(runner):
    result = _run(runner, "models", "--sources", "qwen3-30b-a3b", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == "Qwen/Qwen3-30B-A3B"
    assert data["config_json"] == "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json"
    assert data["source"][data["config_json_items"][0] - 1].startswith(data["config_json"])
    total, active = data["params"]
    # Hugging Face safetensors total 30,532,122,624; the card's "3.3B activated".
    assert total["count"] == "total" and total["published"] == 30_532_122_624 and total["stated_in"]
    assert total["computed"] == pytest.approx(30_532_122_624, rel=0.01)
    assert active["count"] == "active" and active["published"] == 3_300_000_000
    assert active["relative_difference"] == pytest.approx(active["computed"] / 3_300_000_000 - 1)


def test_models_sources_table_of_a_variant(runner):
    result = _run(runner, "models", "--sources", "Qwen/Qwen3-30B-A3B-Base")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Qwen/Qwen3-30B-A3B-Base (base; architecture of Qwen/Qwen3-30B-A3B)"
    total = next(line for line in lines if line.startswith("total "))
    assert "30,532,122,624" in total and "+0.00%" in total
    # The release's own config.json first, then the entry's items it shares the figures with.
    assert "  1. https://huggingface.co/Qwen/Qwen3-30B-A3B-Base/blob/main/config.json" in lines


def test_model_view_warns_when_no_item_states_the_published_count(runner, monkeypatch):
    from planner.outputs import sources_view

    model = make_model(id="org/tiny", total_params=123_456, source=["https://huggingface.co/org/tiny"])
    monkeypatch.setattr(sources_view, "resolve", lambda name, index, what: model)
    result = _run(runner, "models", "--sources", "org/tiny")
    assert result.exit_code == 0, result.output
    assert "warning: no source item cites https://huggingface.co/org/tiny/blob/main/config.json" in result.stdout
    assert "warning: no source item states the published total 123,456" in result.stdout


@pytest.mark.parametrize(("command", "name", "what", "nearest"), [
    ("gpus", "h100-sxn", "GPU", "h100-sxm"),
    ("models", "Qwen/Qwen3-30B-A4B", "model", "Qwen/Qwen3-30B-A3B"),
])
def test_unknown_id_is_one_line_exit_2_with_nearest(runner, command, name, what, nearest):
    result = _run(runner, command, "--sources", name, "--format", "json")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and f"unknown {what} {name!r}" in line and nearest in line.split("nearest: ")[1]
    assert result.stdout == ""


@pytest.mark.parametrize(("command", "flags"), [
    ("gpus", ["--vendor", "nvidia"]),
    ("models", ["--min-memory", "10", "--tokenizer", "qwen3"]),
])
def test_listing_filters_with_sources_are_refused(runner, command, flags):
    result = _run(runner, command, "--sources", "h100-sxm", *flags)
    assert result.exit_code == 2
    assert "--sources shows one entry; drop " + ", ".join(f for f in flags if f.startswith("--")) in result.stderr
