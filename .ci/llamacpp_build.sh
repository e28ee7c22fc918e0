#!/usr/bin/env bash
# Build (or reuse) the CPU llama.cpp tools for tests/test_real_llamacpp.py, from the llama.cpp tree
# that the llama-cpp-python sdist on PyPI vendors (vendor/llama.cpp; 0.3.36 carries b11312).
#
#   bash .ci/llamacpp_build.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/specplan/llamacpp. The build lives in
# DIR/VERSION-HASH (HASH: the sdist pin, the CMake flags, the targets and the compiler), with
#   bin/  llama-server, llama-bench, llama-speculative, llama-speculative-simple, llama-quantize
#   src/  the vendored llama.cpp tree without its build (convert_hf_to_gguf.py, gguf-py/)
# and DIR/VERSION links to the current one; other DIR/VERSION-* builds are removed. It is built in
# a temporary folder inside DIR and renamed when complete, so a killed build is never reused.
# Progress goes to stderr; stdout gets only the bin folder, so
#   export SPECPLAN_LLAMACPP_BIN="$(bash .ci/llamacpp_build.sh)"
# is what CI runs before pytest.
set -euo pipefail

pin="llama-cpp-python==0.3.36"
# The sdist has no .git, so llama.cpp's build-info would print "build 0, commit unknown"; these are
# the release the sdist vendors (its CHANGELOG.md: "update llama.cpp to ggml-org/llama.cpp@0c1e57098",
# tag b11312), so `llama-server --version` prints the line a user of that release sees.
llama_build=11312
llama_commit=0c1e57098
pip_pin="pip==26.3"                      # the project's pip (.ci/run's make_venv)
sdist_backend="scikit-build-core==1.1.2" # the sdist's build backend: pip reads its metadata with it
targets=(llama-server llama-bench llama-speculative llama-speculative-simple llama-quantize)
# Portable CPU build: no GPU back end, no libcurl (models are local files), no -march=native so a
# cache shared between machines never holds instructions another CPU lacks.
cmake_flags=(-DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF
             -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF
             -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON
             -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_NUMBER="$llama_build" -DLLAMA_BUILD_COMMIT="$llama_commit")
jobs="${LLAMACPP_BUILD_JOBS:-2}"
python="${PYTHON:-python3}"

log() { printf '%s\n' "llamacpp_build: $*" >&2; }
die() { log "$*"; exit 2; }

for tool in cmake c++ tar; do
    command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH (Debian: apt-get install cmake g++)"
done

dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/specplan/llamacpp}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
exec 9>"$dir/.lock"
flock 9  # two CI jobs sharing a cache build one tree at a time

version="${pin#*==}"
hash="$( { echo "$pin"; printf '%s\n' "${cmake_flags[@]}" "${targets[@]}"; c++ --version | head -1; } \
         | sha256sum | cut -c1-12)"
dest="$dir/$version-$hash"

if [ -f "$dest/.complete" ]; then
    log "cached $dest"
else
    start=$SECONDS
    tmp="$(mktemp -d "$dir/.build-XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    tools="$dir/.sdist-tools"  # pip and the build backend, so pip reads the sdist's metadata offline
    if [ ! -f "$tools/.complete" ]; then
        rm -rf "$tools" && "$python" -m venv "$tools"
        "$tools/bin/python" -m pip install -q "$pip_pin" >&2
        "$tools/bin/python" -m pip install -q "$sdist_backend" >&2
        touch "$tools/.complete"
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$tools/bin/python" -m pip download -q --no-deps --no-binary :all: \
        --no-build-isolation "$pin" -d "$tmp/sdist" >&2
    tar -xzf "$tmp"/sdist/*.tar.gz -C "$tmp/sdist"
    mv "$tmp"/sdist/*/vendor/llama.cpp "$tmp/src"
    rm -rf "$tmp/sdist"
    for t in "${targets[@]}"; do  # a target a later build drops should fail here, by name
        case "$t" in
            llama-speculative) d="$tmp/src/examples/speculative" ;;
            llama-speculative-simple) d="$tmp/src/examples/speculative-simple" ;;
            llama-bench) d="$tmp/src/tools/llama-bench" ;;
            llama-server) d="$tmp/src/tools/server" ;;
            llama-quantize) d="$tmp/src/tools/quantize" ;;
        esac
        [ -f "$d/CMakeLists.txt" ] || die "$pin has no $t ($d)"
    done
    log "configuring $version (log: $tmp/build/cmake.log while it runs)"
    mkdir -p "$tmp/build"
    cmake -S "$tmp/src" -B "$tmp/build" "${cmake_flags[@]}" > "$tmp/build/cmake.log" 2>&1 \
        || { tail -20 "$tmp/build/cmake.log" >&2; die "cmake configure failed"; }
    log "building ${targets[*]} with -j$jobs"
    cmake --build "$tmp/build" -j"$jobs" --target "${targets[@]}" > "$tmp/build/build.log" 2>&1 \
        || { tail -30 "$tmp/build/build.log" >&2; die "cmake build failed"; }
    mkdir -p "$tmp/out/bin"
    for t in "${targets[@]}"; do cp "$tmp/build/bin/$t" "$tmp/out/bin/"; done
    mv "$tmp/src" "$tmp/out/src"
    "$tmp/out/bin/llama-server" --version > "$tmp/out/version.txt" 2>&1 || true
    touch "$tmp/out/.complete"
    rm -rf "$dest"
    mv "$tmp/out" "$dest"  # same file system: the rename is atomic
    log "built $dest in $((SECONDS - start)) s ($(head -1 "$dest/version.txt"))"
fi
ln -sfn "$(basename "$dest")" "$dir/$version"
for old in "$dir/$version"-*; do  # only VERSION-<12 hex>
    [[ "$(basename "$old")" =~ ^"$version"-[0-9a-f]{12}$ ]] || continue
    [ "$old" = "$dest" ] || { log "removing stale $old"; rm -rf "$old"; }
done
echo "$dest/bin"
