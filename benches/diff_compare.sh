#!/usr/bin/env bash
# Side-by-side: `elsx diff BASE TOOLS` against `diff -qr BASE TOOLS` on the same two trees.
#   benches/diff_compare.sh [FILES]    (default 100000 files in BASE)
# Generates BASE (FILES files in 1,000 directories) and TOOLS (a copy of BASE with 10% of the
# files changed, half of them at the same size, and 10% more files added) under
# target/diff-bench/, warms the page cache, then times each tool (best of 3) and prints the
# ratio elsx / diff. Never fails on a time.
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-100000}
cargo build --release --quiet
elsx=$PWD/target/release/elsx
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

best() { # command... -> best wall time of 3 runs, in seconds
    local b="" s e t
    for _ in 1 2 3; do
        s=$(date +%s.%N)
        "$@" >/dev/null 2>&1 || true
        e=$(date +%s.%N)
        t=$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }')
        if [ -z "$b" ] || awk -v a="$t" -v b="$b" 'BEGIN { exit !(a < b) }'; then b=$t; fi
    done
    echo "$b"
}

diff -qr "$base" "$tools" >/dev/null 2>&1 || true   # warm the page cache
changed=$("$elsx" --json diff "$base" "$tools" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(len(r["added"]), "added,", len(r["changed"]), "changed,", r["unchanged"], "unchanged")')
echo "elsx diff: $changed"
ref=$(best diff -qr "$base" "$tools")
ours=$(best "$elsx" diff "$base" "$tools")
ours1=$(best "$elsx" diff -j1 "$base" "$tools")
printf 'diff -qr        %7.3f s\n' "$ref"
printf 'elsx diff       %7.3f s   ratio x%.3f\n' "$ours" "$(awk -v a="$ours" -v b="$ref" 'BEGIN { print a / b }')"
printf 'elsx diff -j1   %7.3f s   ratio x%.3f\n' "$ours1" "$(awk -v a="$ours1" -v b="$ref" 'BEGIN { print a / b }')"
