"""`specplan export` on the command line: planning flags or --from-plan, refusals, no overwrite."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from planner.cli import main


def test_export_vllm_from_flags_writes_config_and_command(runner, tmp_path):
    out = tmp_path / "vllm.yaml"
    result = runner.invoke(main, ["export", "--server", "vllm", "--target", "llama-3.1-70b", "--gpu", "h100-sxm",
                                  "--gpus", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(out.read_text())
    spec = json.loads(cfg["speculative-config"])
    assert cfg["model"] == "meta-llama/Llama-3.1-70B" and cfg["tensor-parallel-size"] == 4
    assert spec["method"] == "draft_model" and spec["num_speculative_tokens"] >= 1
    script = (tmp_path / "vllm-serve.sh").read_text()
    assert "vllm serve meta-llama/Llama-3.1-70B" in script and "specplan predicted" in out.read_text()
    again = runner.invoke(main, ["export", "--server", "vllm", "--target", "llama-3.1-70b", "--gpu", "h100-sxm",
                                 "--gpus", "4", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr


def test_export_from_a_saved_plan(runner, tmp_path):
    plan = runner.invoke(main, ["recommend", "--target", "qwen2.5-32b", "--gpu", "rtx-4090", "--engine", "llamacpp",
                                "--format", "json"])
    path = tmp_path / "plan.json"
    path.write_text(plan.stdout)
    out = tmp_path / "llama.sh"
    result = runner.invoke(main, ["export", "--server", "llamacpp", "--from-plan", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    words = shlex.split(out.read_text(), comments=True)  # -o names the main file itself
    assert "llama-server" in words and "99" in words
    assert (tmp_path / "llama.env").is_file() and "llama.env" in result.stdout


def test_export_refusals(runner, tmp_path):
    ollama = runner.invoke(main, ["export", "--server", "ollama", "--target", "llama-3.1-8b", "--gpu", "h100-sxm",
                                  "-o", str(tmp_path / "x")])
    assert ollama.exit_code == 2 and "llama.cpp" in ollama.stderr
    no_fit = runner.invoke(main, ["export", "--server", "vllm", "--target", "qwen2.5-72b", "--gpu", "h100-sxm",
                                  "-o", str(tmp_path / "y.yaml")])
    assert no_fit.exit_code == 2 and "fits" in no_fit.stderr
    old = runner.invoke(main, ["export", "--server", "vllm", "--server-version", "0.12.0", "--target", "llama-3.1-8b",
                               "--gpu", "h100-sxm", "-o", str(tmp_path / "z.yaml")])
    assert old.exit_code == 2 and "draft" in old.stderr
    assert list(tmp_path.iterdir()) == []


# --- -o, --force and odd outputs -----------------------------------------------------------------------------

PLAN_ARGS = ["--target", "llama-3.1-8b", "--draft", "llama-3.2-1b", "--gpu", "h100-sxm"]


def _one_line_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def test_o_names_the_main_file_itself_and_companions_are_printed(runner, tmp_path):
    result = runner.invoke(main, ["export", "--server", "sglang", *PLAN_ARGS, "-o", str(tmp_path / "sglang.out")])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sglang-serve.sh", "sglang.out"]
    assert yaml.safe_load((tmp_path / "sglang.out").read_text())["speculative-algorithm"] == "STANDALONE"
    assert str(tmp_path / "sglang.out") in result.stdout and str(tmp_path / "sglang-serve.sh") in result.stdout
    assert ".yaml or .yml" in result.stdout  # SGLang's parser takes only those suffixes
    hf = runner.invoke(main, ["export", "--server", "hf", *PLAN_ARGS, "-o", str(tmp_path / "run.py")])
    assert hf.exit_code == 0 and (tmp_path / "run.py").read_text().count("assistant_model=assistant") == 1


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_force_refuses_outputs_that_are_not_regular_files(runner, tmp_path, kind):
    target = tmp_path / "v.yaml"
    if kind == "symlink":
        (tmp_path / "real").write_text("real\n")
        target.symlink_to(tmp_path / "real")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        (tmp_path / "v-serve.sh").mkdir()  # the companion's name is taken by a folder
    result = runner.invoke(main, ["export", "--server", "vllm", *PLAN_ARGS, "-o", str(target), "--force"])
    assert "not a regular file" in _one_line_error(result)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp" or p.name.startswith(".")]
    if kind == "symlink":
        assert target.is_symlink() and (tmp_path / "real").read_text() == "real\n"
    if kind == "folder":
        assert not target.exists()  # the set is all or nothing: the main file was not written either


def test_odd_outputs_are_one_line_errors(runner, tmp_path):
    (tmp_path / "afile").write_text("x")
    for output, message in ((str(tmp_path / "afile" / "v.yaml"), "is not a folder"),
                            (str(tmp_path / "newdir") + "/", "names no file"),
                            (str(tmp_path / "a\nb.yaml"), "control character")):
        result = runner.invoke(main, ["export", "--server", "vllm", *PLAN_ARGS, "-o", output])
        assert message in _one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# --- --from-plan: strict checks and override flags ---------------------------------------------------------


@pytest.fixture(scope="module")
def saved_estimate(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["estimate", *PLAN_ARGS, "--format", "json"])
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(result.stdout)
    return path


@pytest.mark.parametrize("change, message", [
    ({"k": 1000000}, "k must be between 1 and 64"), ({"k": 0}, "k must be between"), ({"k": True}, "whole number"),
    ({"k": 4.5}, "whole number"), ({"gpus": -2}, "gpus must be between 1"), ({"batch": "4"}, "whole number"),
    ({"context": 0}, "context must be between"), ({"speedup": -1}, "speedup must be a finite number"),
    ({"alpha": 1.5}, "alpha must be a finite number"), ({"target": 7}, "target must be a string"),
    ({"target": "a\nb"}, "control character"), ({"created_at": "\x1b[31m"}, "control character"),
    ({"warnings": "x"}, "warnings must be a list"), ({"fit": []}, "fit must be an object"),
    ({"fit": {"fits": "yes", "per_gpu_gib": {"total": 1}, "capacity_gib": 80}}, "true or false"),
    ({"fit": {"fits": True, "per_gpu_gib": {"total": 1e400}, "capacity_gib": 80}}, "out of range"),  # 1e400 is refused by the JSON reader itself
])
def test_plan_files_are_checked_strictly(runner, tmp_path, saved_estimate, change, message):
    data = {**json.loads(saved_estimate.read_text()), **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data).replace("1e+400", "1e400").replace("Infinity", "1e400"))
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(path), "-o", str(tmp_path / "v.yaml")])
    assert message in _one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[" * 100000, b'{"k": 1' + b"9" * 5000 + b"}",
                                     b'{"target": NaN}', b"[1, 2]", b"{"])
def test_malformed_plan_files_are_one_line_errors(runner, tmp_path, content):
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(path), "-o", str(tmp_path / "v.yaml")])
    _one_line_error(result)


def test_plan_files_must_be_small_regular_files(runner, tmp_path):
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)  # nobody writes to it: reading would hang
    for source, message in ((str(fifo), "not a regular file"), ("/dev/zero", "not a regular file")):
        result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", source, "-o", str(tmp_path / "v.yaml")])
        assert message in _one_line_error(result)
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(17 * 1024 * 1024)  # sparse: the size is checked before anything is read
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(big), "-o", str(tmp_path / "v.yaml")])
    assert "over the 16 MiB limit" in _one_line_error(result)


def test_from_plan_applies_override_flags_by_replanning(runner, tmp_path, saved_estimate):
    saved = json.loads(saved_estimate.read_text())
    out = tmp_path / "v.yaml"
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(saved_estimate), "--k", "2",
                                  "--context", "8192", "--batch", "2", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "re-planning" in result.stderr and "--k 2" in result.stderr and "--context 8192" in result.stderr
    cfg = yaml.safe_load(out.read_text())
    spec = json.loads(cfg["speculative-config"])
    assert (spec["num_speculative_tokens"], cfg["max-model-len"], cfg["max-num-seqs"]) == (2, 8192, 2)
    assert cfg["max-model-len"] != saved["context"]
    other = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(saved_estimate), "--draft",
                                 "llama-3.2-3b", "-o", str(tmp_path / "w.yaml")])
    assert other.exit_code == 0, other.stderr
    assert "Llama-3.2-3B" in json.loads(yaml.safe_load((tmp_path / "w.yaml").read_text())["speculative-config"])["model"]
    plain = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(saved_estimate),
                                 "-o", str(tmp_path / "x.yaml")])
    assert plain.exit_code == 0 and "re-planning" not in plain.stderr
    assert json.loads(yaml.safe_load((tmp_path / "x.yaml").read_text())["speculative-config"])["num_speculative_tokens"] \
        == saved["k"]


def test_from_plan_replans_a_plan_that_did_not_fit(runner, tmp_path):
    plan = runner.invoke(main, ["estimate", "--target", "llama-3.1-70b", "--draft", "llama-3.2-1b", "--gpu", "h100-sxm",
                                "--format", "json"])
    path = tmp_path / "p.json"
    path.write_text(plan.stdout)
    assert json.loads(plan.stdout)["fit"]["fits"] is False
    refused = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(path), "-o", str(tmp_path / "a.yaml")])
    assert "does not fit" in _one_line_error(refused)
    result = runner.invoke(main, ["export", "--server", "vllm", "--from-plan", str(path), "--gpus", "4",
                                  "-o", str(tmp_path / "b.yaml")])
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((tmp_path / "b.yaml").read_text())["tensor-parallel-size"] == 4


def test_server_version_takes_llama_cpp_version_lines(runner, tmp_path):
    for i, version in enumerate(["0.5.0-dev (build 11312, commit 0c1e570)", "version: 11312 (0c1e570)", "b9174"]):
        out = tmp_path / f"l{i}.sh"
        result = runner.invoke(main, ["export", "--server", "llamacpp", *PLAN_ARGS, "--server-version", version,
                                      "-o", str(out)])
        assert result.exit_code == 0, result.stderr
        words = shlex.split(out.read_text(), comments=True)
        assert "--spec-draft-n-max" in words and "--draft-max" not in words
    classic = runner.invoke(main, ["export", "--server", "llamacpp", *PLAN_ARGS, "--server-version", "b8672",
                                   "-o", str(tmp_path / "c.sh")])
    assert classic.exit_code == 0 and "--draft-max" in shlex.split((tmp_path / "c.sh").read_text(), comments=True)
    for bad in ("version: soon", "b9000"):
        result = runner.invoke(main, ["export", "--server", "llamacpp", *PLAN_ARGS, "--server-version", bad,
                                      "-o", str(tmp_path / "z.sh")])
        _one_line_error(result)


def test_export_reports_in_json_too(runner, tmp_path):
    result = runner.invoke(main, ["export", "--server", "vllm", *PLAN_ARGS, "-o", str(tmp_path / "v.yaml"),
                                  "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["wrote"] == [str(tmp_path / "v.yaml"), str(tmp_path / "v-serve.sh")]
    assert data["server"] == "vllm" and data["line"] == "0.25+" and data["replanned_with"] is None
