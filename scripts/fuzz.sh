#!/usr/bin/env bash
# Builds every cargo-fuzz target with the machine's own toolchain and runs each for
# a short time (seconds per target as $1, default 15). A crash fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-15}"
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O
for t in $targets; do
  echo "fuzz: $t for ${secs}s"
  mkdir -p "corpus/$t"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3
done
echo "fuzz: all targets ran clean"
