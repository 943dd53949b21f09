#!/usr/bin/env bash
# Build keel's protocol fuzz targets (fuzz/, cargo-fuzz, nightly) and run each one briefly.
#
#   scripts/fuzz.sh [SECONDS]     # default 30 seconds per target
#
# Each run starts from the checked-in seeds (fuzz/seeds/<target>, read-only) plus a scratch
# corpus in a temp dir, so the work tree is not modified. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script exit non-zero.
set -euo pipefail

secs="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: install it with 'cargo install cargo-fuzz --locked'" >&2
    exit 1
fi

targets=(text_parse meta_parse binary_parse cluster_frame resp_parse redis_image redis_pops)
echo "== building fuzz targets: ${targets[*]}"
cargo +nightly fuzz build

scratch="$(mktemp -d "${TMPDIR:-/tmp}/keel-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

failed=()
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "$scratch/$t"
    if cargo +nightly fuzz run "$t" "$scratch/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>"$scratch/$t.log"; then
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$scratch/$t.log" || true
        echo "== $t: ok"
    else
        # The check that failed (assertion text), then libFuzzer's summary.
        grep -m1 -A4 'panicked at' "$scratch/$t.log" | cut -c1-2000 || true
        grep -E '^(SUMMARY|artifact_prefix|Base64)' "$scratch/$t.log" | cut -c1-2000 || true
        echo "== $t: FAILED (crash input in fuzz/artifacts/$t/)"
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without a finding"
