#!/usr/bin/env bash
# Side-by-side: elsx's writers against the C tools on the same tree, in one run.
#   benches/compare.sh [TREE]     (default: /usr/share; DESIGN.md suggests a copy of /usr)
# Prints wall time and size of each, and the ratios elsx / reference. Never fails on a time.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-/usr/share}
cargo build --release --quiet
elsx=target/release/elsx
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export SOURCE_DATE_EPOCH=1700000000
entries=$(find "$tree" | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $tree ($entries entries, $((bytes / 1048576)) MiB), $(nproc) CPUs"

run() { # label command... -> prints seconds
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}

row() { # name elsx_seconds elsx_file ref_seconds ref_file
    local es=$2 ef=$3 rs=$4 rf=$5
    local esz rsz
    esz=$(stat -c %s "$ef"); rsz=$(stat -c %s "$rf")
    printf '%-28s elsx %7.2f s %12d B | ref %7.2f s %12d B | time x%.2f size x%.3f\n' \
        "$1" "$es" "$esz" "$rs" "$rsz" "$(awk -v a="$es" -v b="$rs" 'BEGIN { print a / b }')" \
        "$(awk -v a="$esz" -v b="$rsz" 'BEGIN { print a / b }')"
}

# squashfs, zstd level 15, 128 KiB blocks (elsx's build default) against mksquashfs on 2 CPUs.
es=$(run "$elsx" pack "$tree" -o "$out/e.sqfs" --fs squashfs)
rs=$(run mksquashfs "$tree" "$out/r.sqfs" -comp zstd -Xcompression-level 15 -b 131072 -processors "$(nproc)" -noappend -no-progress)
row "squashfs zstd-15" "$es" "$out/e.sqfs" "$rs" "$out/r.sqfs"

# erofs lz4hc (level 9) against mkfs.erofs -zlz4hc.
es=$(run "$elsx" pack "$tree" -o "$out/e.erofs" --fs erofs)
rs=$(run mkfs.erofs -zlz4hc -T "$SOURCE_DATE_EPOCH" "$out/r.erofs" "$tree")
row "erofs lz4hc" "$es" "$out/e.erofs" "$rs" "$out/r.erofs"
