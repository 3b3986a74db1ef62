#!/usr/bin/env bash
# Side-by-side: `elsx diff BASE TOOLS` against `diff -qr BASE TOOLS` on the same two trees.
#   benches/diff_compare.sh [FILES] [ROUNDS]    (default 100000 files in BASE, 5 rounds)
# Generates BASE (FILES files in 1,000 directories) and TOOLS (a copy of BASE with 10% of the
# files changed, half of them at the same size, and 10% more files added) under
# target/diff-bench/, warms the page cache, then runs, ROUNDS times and back to back, diff -qr
# and elsx diff at each --compare level (types: the default, also with -j1; metadata; contents,
# also with -j1), and prints each one's median wall time and median CPU time (user + sys), their
# ratios to diff -qr's medians, and the load average before and after. Never fails on a time.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-100000}
rounds=${2:-5}
if [ -z "${ELSX:-}" ]; then
    cargo build --release --quiet
    ELSX=$PWD/target/release/elsx
fi
work=target/diff-bench/$files
if [ ! -f "$work/.done" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    python3 - "$work" "$files" <<'PY'
import os, random, sys
work, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
def content(i, salt):
    size = 64 + (i * 7919) % 8000
    return (("%d-%s-" % (i, salt)) * (size // 8 + 1)).encode()[:size]
for side in ("base", "tools"):
    for d in range(1000):
        os.makedirs(f"{work}/{side}/usr/share/d{d:03}", exist_ok=True)
for i in range(n):
    p = f"usr/share/d{i % 1000:03}/f{i}"
    data = content(i, "a")
    with open(f"{work}/base/{p}", "wb") as f:
        f.write(data)
    r = rnd.random()
    if r < 0.05:
        data = data[:-1] + b"!"          # changed, same size
    elif r < 0.10:
        data = data + b"more"            # changed, other size
    with open(f"{work}/tools/{p}", "wb") as f:
        f.write(data)
for i in range(n, n + n // 10):
    p = f"usr/share/d{i % 1000:03}/f{i}"
    with open(f"{work}/tools/{p}", "wb") as f:
        f.write(content(i, "new"))
PY
    touch "$work/.done"
fi
base=$work/base
tools=$work/tools
echo "trees: $(find "$base" | wc -l) and $(find "$tools" | wc -l) entries, $(du -sm "$base" | cut -f1) + $(du -sm "$tools" | cut -f1) MiB, $(nproc) CPUs"

diff -qr "$base" "$tools" >/dev/null 2>&1 || true   # warm the page cache
for level in types metadata contents; do
    printf '%-9s %s\n' "$level:" "$("$ELSX" diff --compare "$level" "$base" "$tools" | grep -E '^[0-9]+ added')"
done

names=("diff -qr" "elsx diff (types, the default)" "elsx diff -j1" "elsx diff --compare metadata"
       "elsx diff --compare contents" "elsx diff --compare contents -j1")
cmds=("diff -qr $base $tools"
      "$ELSX diff $base $tools"
      "$ELSX diff -j1 $base $tools"
      "$ELSX diff --compare metadata $base $tools"
      "$ELSX diff --compare contents $base $tools"
      "$ELSX diff --compare contents -j1 $base $tools")
declare -A wall cpu
TIMEFORMAT='%R %U %S'
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < rounds; r++)); do
    for k in "${!cmds[@]}"; do
        t=$( { time ${cmds[$k]} >/dev/null 2>&1; } 2>&1 ) || true
        read -r real user sys <<<"$t"
        wall[$k]+="$real "
        cpu[$k]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') "
    done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "x%.3f", a / b }'; }
ref_wall=$(echo "${wall[0]}" | median)
ref_cpu=$(echo "${cpu[0]}" | median)
printf '%-33s %12s %7s %12s %7s   %s\n' command "median wall" ratio "median cpu" ratio "wall runs"
for k in "${!cmds[@]}"; do
    w=$(echo "${wall[$k]}" | median)
    c=$(echo "${cpu[$k]}" | median)
    printf '%-33s %10.3f s %7s %10.2f s %7s   %s\n' "${names[$k]}" "$w" "$(ratio "$w" "$ref_wall")" \
        "$c" "$(ratio "$c" "$ref_cpu")" "${wall[$k]}"
done
