"""Hostile names, paths and plan files cannot make an exported file do anything else.

Every export is written and its shell script run under bash with stub servers first on
PATH (each stub writes its argv to a file and exits 0), in a scratch folder: no other
command may run (no marker file appears), the stub must see exactly the words the
exporter meant, and the YAML must parse to exactly the keys a harmless export has, with
trust_remote_code never set. Names with control characters or that start with "-" are
refused with one line (exit 2 on the command line).
"""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from planner.cli import main
from planner.errors import SpecplanError
from planner.exports import export_plan, plan_from_json, write_export
from planner.exports.llamacpp import _settings
from planner.exports.text import check_text, check_word
from planner.exports.versions import select_line
from planner.outputs.plan_view import estimate_to_dict
from planner.plan import EstimateInputs, estimate
from planner.requests import FitInputs

SCRIPT_SERVERS = ("vllm", "sglang", "trtllm", "llamacpp")
STUBS = {"vllm": "vllm", "sglang": "python3", "trtllm": "trtllm-serve", "llamacpp": "llama-server"}
TRUST = ("trust-remote-code", "trust_remote_code")
SHELL_PAYLOADS = [
    "$(touch MARK_cmd)", "`touch MARK_tick`", "a;touch MARK_semi", "a && touch MARK_and", "a|touch MARK_pipe",
    "${IFS}touch${IFS}MARK_ifs", "a'b\"c", "it's", "a b  c", "#not-a-comment", "x: y", "{a: 1}", "*alias", "&anchor",
    "!!python/object:os.system", "modèle/名前", "a\\b", "$HOME", "~root", "a}b", "%s%n", "trust-remote-code: true",
]
REFUSED = [
    "x\ntrust-remote-code: true", "x\rtouch MARK_cr", "x\ttab", "x\x00nul", "x\x85nel", "x\u2028ls", "x\u202eevil",
    "--trust-remote-code", "-x", " padded", "",
]
_NAME_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(list("$`;|&(){}[]<>'\"\\#*?!~ \n\r"))


@pytest.fixture(scope="module")
def base_plan() -> dict[str, Any]:
    inp = FitInputs(target="llama-3.1-8b", draft="llama-3.2-1b", gpu="h100-sxm")
    return estimate_to_dict(estimate(EstimateInputs(inp, k_given=False)))


@pytest.fixture(scope="module")
def stub_bin(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stubs")
    for name in set(STUBS.values()):
        stub = folder / name
        # NUL-separated so that any word, even one with a line break, comes back whole
        stub.write_text('#!/bin/bash\nprintf \'%s\\0\' "$@" > "$STUB_LOG"\nexit 0\n')
        stub.chmod(0o755)
    return folder


def _run(script: Path, stub_bin: Path, log: Path) -> list[str]:
    env = {"PATH": f"{stub_bin}:/usr/bin:/bin", "HOME": str(script.parent), "STUB_LOG": str(log)}
    proc = subprocess.run(["bash", str(script)], cwd=script.parent, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return log.read_bytes().decode().split("\0")[:-1]


def _expected_argv(server: str, exp_dir: Path, main: str, target: str, plan, version: str | None,
                   target_file: str | None = None, draft_file: str | None = None) -> list[str]:
    config = str(exp_dir / main)
    line = select_line(server, version)
    if server == "vllm":
        extra = list(line.args.get("extra_cli") or ())
        return ["serve", target, "--config", config, *extra]
    if server == "sglang":
        return ["-m", "sglang.launch_server", "--config", config]
    if server == "trtllm":
        return [target, "--extra_llm_api_options" if line.name == "1.0-1.1" else "--config", config]
    words = []
    for flag, _, value in _settings(plan, line):
        words.append(flag)
        name = getattr(value, "name", None)
        words.append(target_file if name == "TARGET_GGUF" else draft_file if name == "DRAFT_GGUF" else str(value))
    return words


def _check_folder(folder: Path, files: list[str]) -> None:
    """Only the exported files (and the stub's log) are in the folder: nothing else ran."""
    assert sorted(p.name for p in folder.iterdir()) == sorted([*files, "argv.log"]), list(folder.iterdir())
    assert not list(folder.rglob("MARK*"))


def _yaml_keys(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    assert not any(k in doc for k in TRUST)
    if isinstance(doc.get("speculative-config"), str):
        assert not any(k in json.loads(doc["speculative-config"]) for k in TRUST)
    return doc


def _export_and_run(plan_data: dict[str, Any], server: str, folder: Path, stub_bin: Path, main: str | None = None,
                    target_path: str | None = None, draft_path: str | None = None,
                    version: str | None = None) -> tuple[Any, dict[str, str]]:
    plan = plan_from_json(plan_data)
    exp = export_plan(plan, server, version, target_path=target_path, draft_path=draft_path, main_file=main)
    folder.mkdir(parents=True, exist_ok=True)
    write_export(exp, folder)
    main_name = next(iter(exp.files))
    harmless = export_plan(plan_from_json({**plan_data, "target": "org/model", "draft": "org/draft"}), server, version)
    if server in ("vllm", "sglang", "trtllm"):
        doc = _yaml_keys((folder / main_name).read_text())
        assert set(doc) == set(yaml.safe_load(next(iter(harmless.files.values()))))  # no key added or lost
        script = folder / next(n for n in exp.files if n != main_name)
    elif server == "llamacpp":
        script = folder / main_name
    else:
        tree = ast.parse((folder / main_name).read_text())
        consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
        assert consts["TARGET"] == (target_path or plan.target) and consts["ASSISTANT"] == (draft_path or plan.draft)
        _check_folder_no_log(folder, list(exp.files))
        return plan, exp.files
    argv = _run(script, stub_bin, folder / "argv.log")
    target = target_path or plan.target
    if server == "llamacpp":
        from planner.exports.llamacpp import gguf_name

        expected = _expected_argv(server, folder, main_name, target, plan, version,
                                  target_path or gguf_name(plan.target, plan.precision),
                                  draft_path or gguf_name(plan.draft, plan.draft_precision or plan.precision))
        _check_env_file(folder / next(n for n in exp.files if n != main_name), stub_bin, expected)
    else:
        expected = _expected_argv(server, folder, main_name, target, plan, version)
    assert argv == expected
    _check_folder(folder, list(exp.files))
    return plan, exp.files


def _check_folder_no_log(folder: Path, files: list[str]) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)


def _check_env_file(env_file: Path, stub_bin: Path, expected_argv: list[str]) -> None:
    """Sourcing the .env file sets exactly the values of the command line and runs nothing."""
    env = {"PATH": f"{stub_bin}:/usr/bin:/bin", "HOME": str(env_file.parent)}
    cmd = f"set -a; . ./{shlex.quote(env_file.name)}; set +a; env -0"
    proc = subprocess.run(["bash", "-c", cmd], cwd=env_file.parent, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if item.startswith("LLAMA_ARG_"))
    values = expected_argv[1::2]
    assert sorted(seen.values()) == sorted(values)


# --- hand-written payloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", SHELL_PAYLOADS)
def test_hostile_model_names_stay_data_in_every_export(base_plan, stub_bin, tmp_path, payload):
    data = {**base_plan, "target": f"org/{payload}", "draft": f"/models/{payload}/draft", "gpu": payload,
            "created_at": payload}
    for server in (*SCRIPT_SERVERS, "hf"):
        _export_and_run(data, server, tmp_path / server, stub_bin)


@pytest.mark.parametrize("payload", SHELL_PAYLOADS)
def test_hostile_stems_and_paths_stay_data(base_plan, stub_bin, tmp_path, payload):
    for server in (*SCRIPT_SERVERS, "hf"):
        main = f"{payload}.{'sh' if server == 'llamacpp' else 'py' if server == 'hf' else 'yaml'}"
        if "/" in main:
            continue  # a folder name, not a file name: -o's folder is tested below
        paths = {"target_path": f"/srv/{payload}/t.gguf", "draft_path": f"/srv/{payload}/d.gguf"}
        if server == "trtllm":
            paths = {"target_path": f"/srv/{payload}/t", "draft_path": f"/srv/{payload}/d"}
        _export_and_run(base_plan, server, tmp_path / server / "out", stub_bin, main=main, **paths)


@pytest.mark.parametrize("version", [None, "0.8.1", "0.9.2", "0.6.0"])
def test_hostile_names_on_older_vllm_lines(base_plan, stub_bin, tmp_path, version):
    data = {**base_plan, "target": "org/$(touch MARK_v)", "draft": "`touch MARK_d`"}
    _export_and_run(data, "vllm", tmp_path / "v", stub_bin, version=version)


@pytest.mark.parametrize("bad", REFUSED)
def test_names_with_control_characters_or_leading_dash_are_refused(base_plan, bad):
    for key in ("target", "draft"):
        with pytest.raises(SpecplanError) as err:
            export_plan(plan_from_json({**base_plan, key: bad}), "vllm")
        assert "\n" not in str(err.value)
    plan = plan_from_json(base_plan)
    for flag in ("target_path", "draft_path"):
        with pytest.raises(SpecplanError):
            export_plan(plan, "llamacpp", **{flag: bad})
    if bad and bad.strip() == bad and not bad.startswith("-"):
        with pytest.raises(SpecplanError, match="control character"):
            plan_from_json({**base_plan, "created_at": bad})
        with pytest.raises(SpecplanError, match="control character"):
            export_plan(plan, "vllm", main_file=f"{bad}.yaml")


def _cli(runner, args: list[str]):
    result = runner.invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("server", [*SCRIPT_SERVERS, "hf"])
def test_hostile_plan_files_and_flags_on_the_command_line(runner, base_plan, stub_bin, tmp_path, server):
    for i, (key, value) in enumerate([("target", "x\ntrust-remote-code: true\nmodel: evil/model"),
                                      ("draft", "d\rtouch MARK_cr #"), ("created_at", "2025\ntouch MARK_c #"),
                                      ("gpu", "h100-sxm\ntouch MARK_g #"), ("target", "--trust-remote-code")]):
        folder = tmp_path / f"p{i}"
        folder.mkdir()
        (folder / "plan.json").write_text(json.dumps({**base_plan, key: value}))
        result = _cli(runner, ["export", "--server", server, "--from-plan", str(folder / "plan.json"),
                               "-o", str(folder / "out.yaml")])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["plan.json"]
    folder = tmp_path / "flags"
    result = _cli(runner, ["export", "--server", server, "--target", "llama-3.1-8b", "--draft", "llama-3.2-1b",
                           "--gpu", "h100-sxm", "--engine", "vllm", "--target-path", '"$(touch MARK_tp)"',
                           "--draft-path", "/m/`touch MARK_dp`", "-o", str(folder / "$(touch MARK_o).yaml")])
    assert result.exit_code == 0, result.stderr
    scripts = [p for p in folder.iterdir() if p.read_text().startswith("#!")]
    for script in scripts:
        argv = _run(script, stub_bin, folder / "argv.log")
        assert '"$(touch MARK_tp)"' in argv or server == "sglang"
        (folder / "argv.log").unlink()
    assert not list(folder.rglob("MARK*")) and not list(Path.cwd().glob("MARK*"))
    assert all(p.name in result.stdout for p in folder.iterdir())  # companions named on the terminal


# --- generated payloads ------------------------------------------------------------------------------------


def _accepts(check, value: str) -> bool:
    try:
        check(value, "name")
    except SpecplanError:
        return False
    return True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(target=st.text(_NAME_CHARS, min_size=1, max_size=24), draft=st.text(_NAME_CHARS, min_size=1, max_size=24),
       stem=st.text(_NAME_CHARS, min_size=1, max_size=16))
@example(target=" 0", draft="d", stem="s")  # the GGUF file name a name with edge white space implies
@example(target="a", draft=" 0", stem="s")
def test_generated_names_are_refused_or_stay_data(base_plan, stub_bin, tmp_path_factory, target, draft, stem):
    data = {**base_plan, "target": f"org/{target}", "draft": draft}
    ok = (_accepts(check_word, data["target"]) and _accepts(check_word, draft) and _accepts(check_text, stem)
          and "/" not in stem)
    if not ok:
        with pytest.raises(SpecplanError) as err:
            export_plan(plan_from_json(data), "vllm", main_file=f"{stem}.x")
        assert "\n" not in str(err.value)
        return
    root = tmp_path_factory.mktemp("gen")
    for server in SCRIPT_SERVERS:
        _export_and_run(data, server, root / server, stub_bin, main=f"{stem}.x")


# --- any value in any field: an export or one line, never another exception ----------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["bf16", "fp8", "q4_k_m", "int4-awq", "vllm", "llamacpp", "nope", "h100-sxm"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _nested_keys(plan: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys: list[tuple[Any, ...]] = [(k,) for k in plan]
    if "fit" in plan:
        keys += [("fit", k) for k in plan["fit"]] + [("fit", "per_gpu_gib", k) for k in plan["fit"]["per_gpu_gib"]]
    for i, cand in enumerate(plan.get("candidates", [])[:3]):
        keys += [("candidates", i, k) for k in cand] + [("candidates", i, "per_gpu_gib", k) for k in cand["per_gpu_gib"]]
    return keys


@pytest.fixture(scope="module")
def base_rec() -> dict[str, Any]:
    from planner.outputs.plan_view import recommendation_to_dict
    from planner.plan import RecommendInputs, recommend

    rec = recommend(RecommendInputs(FitInputs(target="llama-3.1-8b", gpu="h100-sxm")))
    return recommendation_to_dict(rec, "chat", "latency")


def _mutate(plan: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Set ``value`` at ``path`` where the path still exists (an earlier change may have replaced a parent)."""
    holder: Any = plan
    for key in path[:-1]:
        if isinstance(holder, dict) and isinstance(key, str) and key in holder:
            holder = holder[key]
        elif isinstance(holder, list) and isinstance(key, int) and key < len(holder):
            holder = holder[key]
        else:
            return
    last = path[-1]
    if isinstance(holder, dict) and isinstance(last, str):
        holder[last] = value


@pytest.mark.parametrize("which", ["estimate", "recommend"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_any_plan_field_value_gives_an_export_or_one_line(base_plan, base_rec, which, data):
    base = base_plan if which == "estimate" else base_rec
    plan = json.loads(json.dumps(base))
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(plan, data.draw(st.sampled_from(_nested_keys(base))), data.draw(_JSON_VALUES))
    server = data.draw(st.sampled_from(("vllm", "sglang", "llamacpp", "trtllm", "hf")))
    try:
        exp = export_plan(plan_from_json(plan), server, data.draw(st.sampled_from([None, "0.9.2", "b8672", "1.1"])))
    except SpecplanError as err:
        assert "\n" not in str(err)
        return
    assert exp.files and all(isinstance(t, str) for t in exp.files.values())
