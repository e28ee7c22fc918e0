#!/usr/bin/env bash
# Build (or reuse) one CPU-only venv per server release in .ci/server-venvs/*.txt, for
# tests/test_real_servers.py, which feeds specplan's exports to those servers' own parsers.
#
#   bash .ci/server_venvs.sh [DIR] [NAME ...]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/specplan/server-venvs; NAME (e.g. vllm-0.33.0)
# defaults to every requirement file. Each venv lives in DIR/NAME-HASH (HASH: the requirement
# file, the torch pin and the Python version), and DIR/NAME links to the current one; other
# DIR/NAME-* venvs are removed. Progress goes to stderr; stdout gets only DIR, so
#   export SPECPLAN_SERVER_VENVS="$(bash .ci/server_venvs.sh)"
# is what CI runs before pytest.
#
# Why the install is done in this order: vLLM and SGLang pin a CUDA torch. The CPU torch wheel
# is installed first, then every other package from the requirement file with --no-deps, so
# pip resolves nothing and pulls no CUDA torch or nvidia-* packages; the result is checked.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
reqdir="$here/server-venvs"
torch_pin="torch==2.13.0"  # the CPU wheel (constraints.txt tests the project with the same torch)
python="${PYTHON:-python3}"
sdist_backend="scikit-build-core==1.1.2"  # llama-cpp-python's build backend (pyproject [build-system])

dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/specplan/server-venvs}"
[ $# -gt 0 ] && shift
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in "$reqdir"/*-[0-9]*.txt; do names+=("$(basename "$f" .txt)"); done
fi

log() { printf '%s\n' "server_venvs: $*" >&2; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
exec 9>"$dir/.lock"
flock 9  # two CI jobs sharing a cache build one venv at a time

pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

check_cpu_only() {  # $1: venv. No CUDA torch, no CUDA runtime wheels (nvidia-ml-py is NVML's Python binding).
    local bad
    bad="$("$1/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(nvidia-|cuda-|cupy)' \
           | grep -ivE '^nvidia-ml-py==' || true)"
    if [ -n "$bad" ]; then
        log "$1 has CUDA packages: $(echo "$bad" | tr '\n' ' ')"
        return 1
    fi
    "$1/bin/python" -c 'import sys, torch; sys.exit(0 if torch.version.cuda is None else "torch %s is a CUDA build" % torch.__version__)'
}

build() {  # $1: name, $2: requirement file, $3: venv
    local venv="$3" start=$SECONDS
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q "$torch_pin" >&2
    "$venv/bin/python" -m pip install -q --no-deps -r "$2" >&2
    check_cpu_only "$venv"
    cp "$2" "$venv/specplan-requirements.txt"  # the test compares it with the repository's file
    touch "$venv/.complete"                    # written last: a killed build is rebuilt next time
    log "$1: built $venv in $((SECONDS - start)) s"
}

for name in "${names[@]}"; do
    req="$reqdir/$name.txt"
    [ -f "$req" ] || { log "no requirement file $req"; exit 2; }
    hash="$( { cat "$req"; echo "$torch_pin python$pyver"; } | sha256sum | cut -c1-12)"
    venv="$dir/$name-$hash"
    if [ -f "$venv/.complete" ] && cmp -s "$req" "$venv/specplan-requirements.txt"; then
        log "$name: cached $venv"
    else
        build "$name" "$req" "$venv"
    fi
    ln -sfn "$(basename "$venv")" "$dir/$name"
    for old in "$dir/$name"-*; do  # only NAME-<12 hex>: vllm-0.3-* must not match vllm-0.33.0-*
        [[ "$(basename "$old")" =~ ^"$name"-[0-9a-f]{12}$ ]] || continue
        [ "$old" = "$venv" ] || { log "removing stale $old"; rm -rf "$old"; }
    done
done

# llama.cpp's argument definitions (common/arg.cpp), from the llama-cpp-python sdists.
while read -r pin; do
    case "$pin" in ""|\#*) continue ;; esac
    out="$dir/llamacpp-src/${pin#*==}"
    if [ -f "$out/.complete" ]; then
        log "$pin: cached $out"
        continue
    fi
    tools="$dir/.sdist-tools"  # the sdist's build backend, so pip reads its metadata without an isolated build env
    if [ ! -f "$tools/.complete" ]; then
        rm -rf "$tools" && "$python" -m venv "$tools"
        "$tools/bin/python" -m pip install -q "$sdist_backend" >&2
        touch "$tools/.complete"
    fi
    tmp="$(mktemp -d)"
    "$tools/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "$pin" -d "$tmp" >&2
    tar -xzf "$tmp"/*.tar.gz -C "$tmp" --wildcards '*/CHANGELOG.md' '*/vendor/llama.cpp/common/arg.cpp'
    rm -rf "$out" && mkdir -p "$out"
    cp "$tmp"/*/CHANGELOG.md "$tmp"/*/vendor/llama.cpp/common/arg.cpp "$out"/
    rm -rf "$tmp"
    touch "$out/.complete"
    log "$pin: common/arg.cpp in $out"
done < "$reqdir/llamacpp-sources.txt"
echo "$dir"
