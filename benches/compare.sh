#!/usr/bin/env bash
# Side-by-side: elsx's writers against the C tools on the same tree, in one run.
#   benches/compare.sh [TREE]     (default: /usr/share; DESIGN.md suggests a copy of /usr)
#   REPEAT=N (runs per pair, default 2), NO_BUILD=1 ELSX=PATH (a prebuilt elsx), ONLY="zstd xz gzip lz4hc" (which pairs)
# Prints wall time and size of each run with the load average (1 min) before it, then per pair
# the median times and their ratio elsx / reference. Never fails on a time.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-/usr/share}
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
elsx=${ELSX:-target/release/elsx}
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

load() { cut -d' ' -f1 /proc/loadavg; }

row() { # name elsx_seconds elsx_file ref_seconds ref_file elsx_load ref_load
    local es=$2 ef=$3 rs=$4 rf=$5
    local esz rsz
    esz=$(stat -c %s "$ef"); rsz=$(stat -c %s "$rf")
    printf '%-28s elsx %7.2f s %12d B (load %s) | ref %7.2f s %12d B (load %s) | time x%.2f size x%.3f\n' \
        "$1" "$es" "$esz" "$6" "$rs" "$rsz" "$7" "$(awk -v a="$es" -v b="$rs" 'BEGIN { print a / b }')" \
        "$(awk -v a="$esz" -v b="$rsz" 'BEGIN { print a / b }')"
}

median() { awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

summary() { # name elsx_times ref_times
    local em rm
    em=$(tr ' ' '\n' <<<"$2" | median); rm=$(tr ' ' '\n' <<<"$3" | median)
    printf '%-28s median of %d: elsx %.2f s | ref %.2f s | time x%.2f\n' "$1" "$repeat" "$em" "$rm" \
        "$(awk -v a="$em" -v b="$rm" 'BEGIN { print a / b }')"
}

# Each pair runs back to back, REPEAT times (default 2), so load from others on the machine hits
# both sides alike. elsx gets the same compressor, level and block size as the reference; the
# reference runs with its defaults otherwise (mksquashfs: fragments, duplicate detection, NFS
# export table; no tail packing, which elsx always does).
repeat=${REPEAT:-2}
jobs=$(nproc)

squashfs() { # label elsx-compress mksquashfs-args...
    local label=$1 comp=$2
    shift 2
    local ets="" rts=""
    for _ in $(seq "$repeat"); do
        el=$(load)
        es=$(run "$elsx" pack "$tree" -o "$out/e.sqfs" --fs squashfs --compress "$comp" --block-size 131072 -j "$jobs")
        rl=$(load)
        rs=$(run mksquashfs "$tree" "$out/r.sqfs" "$@" -b 131072 -processors "$jobs" -noappend -no-progress)
        row "$label" "$es" "$out/e.sqfs" "$rs" "$out/r.sqfs" "$el" "$rl"
        ets+=" $es"; rts+=" $rs"
    done
    summary "$label" "$ets" "$rts"
}

erofs() { # label elsx-compress mkfs.erofs-args...
    local label=$1 comp=$2
    shift 2
    local ets="" rts=""
    for _ in $(seq "$repeat"); do
        el=$(load)
        es=$(run "$elsx" pack "$tree" -o "$out/e.erofs" --fs erofs --compress "$comp" -j "$jobs")
        rl=$(load)
        rs=$(run mkfs.erofs "$@" -T "$SOURCE_DATE_EPOCH" "$out/r.erofs" "$tree")
        row "$label" "$es" "$out/e.erofs" "$rs" "$out/r.erofs" "$el" "$rl"
        ets+=" $es"; rts+=" $rs"
    done
    summary "$label" "$ets" "$rts"
}

for what in ${ONLY:-zstd xz lz4hc}; do
    case $what in
    zstd) squashfs "squashfs zstd-15 128K" zstd:15 -comp zstd -Xcompression-level 15 ;;
    xz) squashfs "squashfs xz 128K" xz -comp xz ;;
    gzip) squashfs "squashfs gzip-9 128K" gzip:9 -comp gzip ;;
    lz4hc) erofs "erofs lz4hc-9" lz4hc:9 -zlz4hc,9 ;;
    esac
done
