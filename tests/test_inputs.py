"""planner.inputs: regular files only, a size cap, strict text, JSON/YAML limits, printable names."""

from __future__ import annotations

import os
import threading

import pytest

from planner.errors import SpecplanError
from planner.inputs import (
    MAX_INPUT_BYTES,
    MAX_NESTING,
    check_name,
    check_output,
    check_strings,
    parse_json,
    parse_yaml,
    read_bytes,
    read_head,
    read_json,
    read_text,
    read_yaml,
    shown,
)


def test_reads_a_regular_file(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"a": [1, 2.5, "x"]}')
    assert read_json(p) == {"a": [1, 2.5, "x"]}
    assert read_text(p) == '{"a": [1, 2.5, "x"]}'


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # If read_bytes opened the FIFO for reading it would block until a writer came; a watchdog
    # writer unblocks it so that a regression fails the assertion instead of hanging the suite.
    unblock = threading.Timer(10, lambda: open(fifo, "wb").close())
    unblock.start()
    try:
        with pytest.raises(SpecplanError, match="FIFO"):
            read_bytes(fifo, "--calibration")
    finally:
        unblock.cancel()


@pytest.mark.parametrize("path, kind", [("/dev/zero", "character device"), ("/dev/null", "character device")])
def test_devices_are_refused(path, kind):
    if not os.path.exists(path):
        pytest.skip(f"{path} missing")
    with pytest.raises(SpecplanError, match=f"--measurements {path}: is a {kind}, not a regular file"):
        read_text(path, "--measurements")


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(SpecplanError, match="is a directory"):
        read_text(tmp_path)
    with pytest.raises(SpecplanError, match="no such file"):
        read_text(tmp_path / "nope.yaml")


def test_symlink_to_device_is_refused(tmp_path):
    link = tmp_path / "cal.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(SpecplanError, match="character device"):
        read_yaml(link)


def test_size_cap_is_named(tmp_path):
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(SpecplanError, match=r"over the 64 MiB limit"):
        read_bytes(big)


def test_read_head_reads_a_prefix_of_a_big_file(tmp_path):
    big = tmp_path / "model.safetensors"
    with big.open("wb") as f:
        f.write(b"12345678")
        f.truncate(MAX_INPUT_BYTES * 2)
    head, size = read_head(big, 8)
    assert head == b"12345678" and size == MAX_INPUT_BYTES * 2


def test_non_utf8_refused_but_logs_are_decoded(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"draft acceptance rate = 0.5 ( 5 accepted / 10 generated)\xff\xfe\n")
    with pytest.raises(SpecplanError, match=r"not UTF-8 text \(invalid byte at offset 56\)"):
        read_text(p)
    assert read_text(p, log=True).startswith("draft acceptance rate")


def test_utf8_bom_is_accepted(tmp_path):
    p = tmp_path / "c.json"
    p.write_bytes(b"\xef\xbb\xbf{}")
    assert read_json(p) == {}


@pytest.mark.parametrize("text, match", [
    ("[" * 50_000 + "]" * 50_000, "nested deeper"),
    ('{"a":' * 200 + "1" + "}" * 200, "nested deeper"),
    ('{"a": ' + "9" * 5000 + "}", "5000 digits"),
    ("[NaN]", "NaN is not a number"),
    ("[-Infinity]", "not a number"),
    ("[1e400]", "out of range"),
    ("{", "invalid JSON at line 1"),
])
def test_json_limits(text, match):
    with pytest.raises(SpecplanError, match=match):
        parse_json(text, "f.json")


def test_json_at_the_nesting_limit_is_read():
    doc = parse_json("[" * MAX_NESTING + "]" * MAX_NESTING, "f.json")
    assert isinstance(doc, list)


BILLION_LAUGHS = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f'{c}: &{c} [{",".join([f"*{p}"] * 9)}]\n' for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, match", [
    (BILLION_LAUGHS, "more than 1000000 YAML nodes"),
    ("a: &a [1, *a]\n", "cycle"),
    ("[" * 20_000 + "]" * 20_000, "nest"),
    ("x: " + "9" * 5000 + "\n", "Exceeds the limit"),
    ("!!python/object/apply:os.system ['true']\n", "invalid YAML"),
    ("a: [b\n", "invalid YAML at line"),
])
def test_yaml_limits(text, match):
    with pytest.raises(SpecplanError, match=match):
        parse_yaml(text, "f.yaml")


def test_yaml_shared_anchors_below_the_limit_are_read():
    assert parse_yaml("a: &a [1, 2]\nb: [*a, *a]\n", "f.yaml") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


@pytest.mark.parametrize("name", ["x\ny", "x\r", "a\tb", "nul\x00", "\x1b[31mred", "a\u2028b", "\u202etxt", "a\udc80"])
def test_control_characters_in_names_are_refused(name):
    with pytest.raises(SpecplanError, match="--target"):
        check_name(name, "--target")


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.1-8B-Instruct", "[/]", "[bold]x", "$(id)", "\u00e9\u00e8",
                                  "\U0001F600", "./my model", "a\u200db"])
def test_printable_names_pass_unchanged(name):
    assert check_name(name, "--target") == name


def test_check_strings_finds_nested_control_characters():
    check_strings({"a": ["fine", {"b": "also fine"}]}, "f")
    with pytest.raises(SpecplanError, match="control character"):
        check_strings({"a": [{"b": "x\ntrust-remote-code: true"}]}, "f")
    with pytest.raises(SpecplanError, match="control character"):
        check_strings({"key\n": 1}, "f")


def test_shown_escapes_and_cuts():
    assert shown("a\nb") == repr("a\nb")
    assert shown("x" * 200).endswith("...'")
    assert shown(12) == "12"


def test_check_output(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SpecplanError, match="is not a folder"):
        check_output(tmp_path / "file.txt" / "out.yaml", force=True)
    with pytest.raises(SpecplanError, match="pass --force"):
        check_output(tmp_path / "file.txt", force=False)
    check_output(tmp_path / "file.txt", force=True)
    check_output(tmp_path / "new" / "deeper" / "out.yaml", force=False)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SpecplanError, match="FIFO"):
        check_output(tmp_path / "fifo", force=True)
    with pytest.raises(SpecplanError, match="directory"):
        check_output(tmp_path, force=True)


def test_check_output_refuses_empty_folder_like_and_linked_paths(tmp_path):
    with pytest.raises(SpecplanError, match="empty"):
        check_output("", force=True)
    with pytest.raises(SpecplanError, match="names a folder"):
        check_output(f"{tmp_path}/newdir/", force=True)
    (tmp_path / "real.html").write_text("x")
    (tmp_path / "link.html").symlink_to(tmp_path / "real.html")
    with pytest.raises(SpecplanError, match="symbolic link"):
        check_output(tmp_path / "link.html", force=True)
    with pytest.raises(SpecplanError, match="control character"):
        check_output(tmp_path / "a\nb.yaml", force=True)


def test_check_output_refuses_a_name_too_long_for_the_atomic_temp_file(tmp_path):
    with pytest.raises(SpecplanError, match="longer than the 241 bytes"):
        check_output(tmp_path / ("n" * 250 + ".html"), force=True)
    check_output(tmp_path / ("n" * 236 + ".html"), force=True)
