#!/usr/bin/env bash
# Fuzzes the parsers of untrusted bytes (npy, npz, safetensors, --prior specs) with libFuzzer under
# AddressSanitizer, each target from its seed corpus in Tests/FuzzCorpus/TARGET.
#   bash Tests/fuzz.sh -max_total_time=60      # CI: a minute each
#   bash Tests/fuzz.sh -runs=1000000           # the long runs in Benchmarks/README.md
#   TARGETS="npz" bash Tests/fuzz.sh -runs=1000
# Any libFuzzer flag may follow. A finding stops the script with a non-zero status and leaves
# its input in .build-fuzz/findings/TARGET/ (replay: .build-fuzz/debug/sbi-fuzz TARGET FILE).
# Inputs may take 2 GiB at most (-rss_limit_mb, also the largest single allocation): a few
# kilobytes that make a parser ask for more are a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${TARGETS:-npy npz safetensors prior}
swift build --build-path .build-fuzz -Xswiftc -sanitize=fuzzer,address --product sbi-fuzz 2>&1 \
    | grep -v "Cannot export local symbol" | tail -n 3
binary=.build-fuzz/debug/sbi-fuzz
export SWIFT_BACKTRACE=enable=no   # let libFuzzer's handler report crashes
for target in $targets; do
    work=.build-fuzz/corpus/$target findings=.build-fuzz/findings/$target
    rm -rf "$work" && mkdir -p "$work" "$findings"
    cp Tests/FuzzCorpus/"$target"/* "$work"/
    log=.build-fuzz/fuzz-$target.log
    if ! "$binary" "$target" "$work" -rss_limit_mb=2048 -artifact_prefix="$findings/" -print_final_stats=1 "$@" \
        >"$log" 2>&1; then
        grep -E "Fatal error|ERROR|SUMMARY|Test unit" "$log" | head -n 5
        echo "fuzz $target: FINDING (log $log)"
        exit 1
    fi
    runs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$")
    echo "fuzz $target: $runs executions, no findings, $(ls "$work" | wc -l) corpus inputs"
done
