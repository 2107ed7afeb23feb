#!/usr/bin/env bash
# Runs each fuzz target for SECONDS on a copy of its seed corpus (the
# repository's corpus never grows by itself). Fails when any target finds a
# crash, a leak, a timeout or an out-of-memory, and prints where the input is.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
set -uo pipefail

build=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
failed=()

for t in "$@"; do
    bin=$build/tests/fuzz/fuzz_$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $t: no binary $bin" >&2
        failed+=("$t")
        continue
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/wl-fuzz-$t.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$here/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
    start=$(date +%s)
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -1)
    artifacts=$(find "$work/artifacts" -type f)
    if [ $rc -eq 0 ] && [ -z "$artifacts" ]; then
        echo "fuzz: $t ok in ${took}s: $stats"
        rm -rf "$work"
    else
        echo "fuzz: $t FAILED (exit $rc) after ${took}s; the log's end:" >&2
        grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$work/log" | tail -40 >&2
        for a in $artifacts; do
            echo "fuzz: $t: crash input $a (reproduce: $bin $a)" >&2
        done
        echo "fuzz: $t: full log $work/log" >&2
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#} targets ran ${seconds}s each without a finding"
