"""Every table keeps every id whole and every column at 60, 80 and 200 columns and in a pipe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.outputs.render import PIPE_WIDTH, Column, print_table

WIDTHS = (60, 80, 200)
SERVER = Path(__file__).parent / "data" / "server"
HARDWARE = ["--target", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "h100-sxm", "--gpus", "4"]
DRAFT = ["--draft", "meta-llama/Llama-3.2-1B-Instruct"]
# A target whose catalogue drafts include a long name (jukofyork/DeepSeek-R1-DRAFT-0.5B-v1.0).
LONG_DRAFT = ["--target", "deepseek-ai/DeepSeek-V3", "--gpu", "h200", "--gpus", "8", "--top", "30"]


def run(args: list[str], width: int | None) -> str:
    """The command's stdout at a terminal width (COLUMNS), or in a pipe (no COLUMNS: stdout is not a tty)."""
    env = {"COLUMNS": str(width) if width else None}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code in (0, 1), result.output
    return result.output


def data(args: list[str]) -> object:
    result = CliRunner().invoke(main, [*args, "--format", "json"], env={"COLUMNS": None})
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def has_header(text: str, header: str) -> bool:
    """The header as a whole word (table header row or `header:` in the narrow layout)."""
    return re.search(rf"(?<!\S){re.escape(header)}(?=[:\s]|$)", text, flags=re.M) is not None


def assert_whole(text: str, ids: list[str], headers: list[str]) -> None:
    missing = [i for i in ids if i not in text]
    assert not missing, f"{len(missing)} ids cut or missing, e.g. {missing[:3]}"
    lost = [h for h in headers if not has_header(text, h)]
    assert not lost, f"columns dropped: {lost}"
    assert "…" not in text


@pytest.fixture(scope="module")
def gpu_ids() -> list[str]:
    return [g["id"] for g in data(["gpus"])]  # type: ignore[union-attr, index]


@pytest.fixture(scope="module")
def model_ids() -> list[str]:
    return [m["id"] for m in data(["models"])]  # type: ignore[union-attr, index]


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_gpus_keeps_all_87_ids_and_columns(width, gpu_ids):
    text = run(["gpus"], width)
    assert len(gpu_ids) == 87  # 75 + the 12 accelerators of issue 11
    assert_whole(text, gpu_ids, ["id", "name", "memory", "bandwidth", "fp16 TFLOPS", "fp8 TFLOPS", "link"])


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_models_keeps_every_id_and_column(width, model_ids):
    text = run(["models"], width)
    assert len(model_ids) >= 40
    assert_whole(text, model_ids, ["id", "family", "gen", "params", "layers", "heads/kv", "tokenizer", "context"])


def test_pipe_prints_one_row_per_line(gpu_ids):
    """In a pipe each GPU is one table row, so `grep` finds it with all its columns."""
    lines = run(["gpus"], None).splitlines()
    for gid in gpu_ids:
        row = next(line for line in lines if f" {gid} " in line)
        assert "GiB" in row and "GB/s" in row


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_fit_table(width):
    args = ["fit", *HARDWARE, *DRAFT]
    d = data(args)
    text = run(args, width)
    assert_whole(text, [d["target"], d["draft"], d["gpu"]], ["component", "GiB", "detail"])  # type: ignore[index]
    for component in ("target weights", "draft weights", "kv cache", "activations", "runtime reserve", "total"):
        assert component in text


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_estimate(width):
    args = ["estimate", *HARDWARE, *DRAFT]
    d = data(args)
    text = run(args, width)
    assert_whole(text, [d["target"], d["draft"], d["gpu"]], [])  # type: ignore[index]
    assert f"speedup {d['speedup']:.2f}x" in text  # type: ignore[index]


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_recommend_with_a_long_draft_name_keeps_the_k_column(width):
    args = ["recommend", *LONG_DRAFT]
    d = data(args)
    shown = [c["draft"].rsplit("/", 1)[-1] for c in d["candidates"] if c["draft"]]  # type: ignore[index]
    assert any(len(name) > 20 for name in shown)
    text = run(args, width)
    assert_whole(text, shown + [d["target"]], ["#", "draft", "prec", "k", "gpus", "speedup", "band", "alpha",  # type: ignore[index]
                                               "tok/s", "fits"])
    for c in d["candidates"]:  # type: ignore[index]
        assert f"{c['speedup']:.2f}x" in text


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_recommend_throughput_and_cost_show_the_ranking_figure(width):
    args = ["recommend", *HARDWARE, "--batch", "8", "--objective", "cost", "--gpu-hour-usd", "2.5"]
    d = data(args)
    text = run(args, width)
    assert_whole(text, [], ["tok/s", "tok/s all", "tok/USD", "k"])
    for c in d["candidates"]:  # type: ignore[index]
        assert f"{c['throughput_tokens_per_s']:.1f}" in text
        assert f"{c['tokens_per_usd']:.0f}" in text


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cal-with-a-rather-long-folder-name-to-test-wrapping") / "calibration-file.yaml"
    result = CliRunner().invoke(main, [
        "calibrate", "--vllm-metrics-before", str(SERVER / "vllm_v1_before.prom"),
        "--vllm-metrics", str(SERVER / "vllm_v1_after.prom"), "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b",
        "-o", str(out)], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_calibration_summary_and_estimate_calibration_table(width, calibration, tmp_path):
    args = ["calibrate", "--vllm-metrics-before", str(SERVER / "vllm_v1_before.prom"), "--vllm-metrics",
            str(SERVER / "vllm_v1_after.prom"), "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b",
            "-o", str(tmp_path / "again.yaml")]
    text = run(args, width)
    assert_whole(text, [str(tmp_path / "again.yaml"), "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.2-1B"], [])
    text = run(["estimate", *HARDWARE, *DRAFT, "--calibration", str(calibration)], width)
    assert_whole(text, [str(calibration)], ["figure", "catalogue", "calibrated", "measured", "from"])


@pytest.fixture(scope="module")
def validation() -> dict:
    from planner.outputs.validate_view import validation_to_dict
    from planner.validate import validate

    return validation_to_dict(validate())


@pytest.mark.parametrize("width", [*WIDTHS, None])
def test_validate_table(width, validation, monkeypatch, capsys):
    from planner.outputs.validate_view import print_validation_table

    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(width))
    print_validation_table(validation)
    text = capsys.readouterr().out
    rows = [*validation["checks"], *validation["speculative"]]
    assert_whole(text, sorted({c["row"] for c in rows}),
                 ["row", "configuration", "measured", "predicted", "error", "pure roofline", "engine", "alpha",
                  "roofline error", "passed as", "speedup prior-only", "speedup measured acceptance", "check"])
    # Free text wraps between words only: every word of every configuration is still whole.
    words = {w for c in rows for w in c["what"].split()}
    assert all(w in text for w in words)


def test_narrow_layout_packs_pairs_without_splitting_them(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "40")
    long_id = "organisation/a-model-name-longer-than-the-terminal"
    print_table("t", [Column("id"), Column("size", "right"), Column("note", wrap=True)],
                [[long_id, "12.5 GiB", "free text"], ["short", "1 GiB", "x"]])
    lines = capsys.readouterr().out.splitlines()
    assert f"id: {long_id}" in lines
    assert "  size: 12.5 GiB; note: free text" in lines
    assert all(len(line) <= 40 for line in lines if not line.startswith("id:"))


def test_names_with_markup_are_printed_as_typed(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    print_table("[bold]not markup[/]", [Column("id")], [["org/[/]weird[red]"]])
    out = capsys.readouterr().out
    assert "[bold]not markup[/]" in out and "org/[/]weird[red]" in out


def test_pipe_width_is_unlimited():
    assert PIPE_WIDTH >= 1000


@pytest.mark.parametrize("width", WIDTHS)
def test_detect_table(width, monkeypatch, capsys):
    from planner.outputs.calibration_view import print_detect_table

    monkeypatch.setenv("COLUMNS", str(width))
    rows = [{"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.6, "theoretical_bandwidth_gb_s": 3352.3,
             "catalog_id": "h100-sxm", "power_limit_w": 700.0, "driver": "550.54.15"},
            {"name": "NVIDIA Some Future Accelerator With A Long Name", "memory_gib": 141.0,
             "theoretical_bandwidth_gb_s": None, "catalog_id": None, "power_limit_w": None, "driver": None}]
    print_detect_table(rows)
    text = capsys.readouterr().out
    assert_whole(text, ["h100-sxm", "550.54.15", "3352 GB/s"],
                 ["#", "name", "memory", "bandwidth (NVML)", "catalogue", "power limit", "driver"])
