#!/usr/bin/env bash
# Clean release build of each candidate engine crate together with everything
# it depends on, one after the other in a target directory of its own.
# Prints wall-clock and CPU (user + sys) seconds and the number of crates built.
#
#   ./build-times.sh            # all three
#   ./build-times.sh redb       # one
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${BUILD_TIMES_TARGET_DIR:-${TMPDIR:-/tmp}/catalog-engine-bench-build-times}"
crates=("$@")
[ ${#crates[@]} -eq 0 ] && crates=(rusqlite redb fjall)
cargo fetch --quiet
echo "| Crate | Crates compiled | Wall s | CPU s (user+sys) |"
echo "|---|---:|---:|---:|"
for c in "${crates[@]}"; do
    cargo clean --quiet
    units=$(cargo tree --quiet -p "$c" -e normal,build --prefix none --no-dedupe | sort -u | wc -l)
    TIMEFORMAT='%R %U %S'
    t=$( { time cargo build --quiet --release -p "$c" >/dev/null 2>&1; } 2>&1 )
    read -r wall user sys <<<"$t"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
    echo "| $c | $units | $wall | $cpu |"
done
cargo clean --quiet
