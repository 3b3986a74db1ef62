#!/usr/bin/env bash
# Side-by-side: elsx's resolver against libsolv's tools on the same rpm-md repository, in one run.
#   benches/resolve_compare.sh [JOB...]   (default: gnome-core kde-full libreoffice texlive-full)
# Env: REPO (default $ELSX_DATA/debian-bookworm-rpmmd, ELSX_DATA defaulting to ../shared/data),
#      RUNS (median of, default 3), RECOMMENDS=1 (install Recommends on both sides; default off).
#
# cold: `repo2solv` (primary.xml.zst -> .solv) then `testsolv` on it, against `elsx resolve`
#       with an empty cache directory (decompress, parse, store the parsed cache, resolve).
# warm: `testsolv` on the ready .solv, against `elsx resolve` with its parsed cache in place.
# Time is wall clock (median of RUNS, the two sides alternating), memory the peak RSS
# (/usr/bin/time %M; for the cold libsolv pair the larger of the two); each row ends with the
# load average when it was done. Ratios are elsx / libsolv. Never fails on a time.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${ELSX_DATA:-../shared/data}
repo=$(realpath "${REPO:-$data/debian-bookworm-rpmmd}")
runs=${RUNS:-3}
jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(gnome-core kde-full libreoffice texlive-full)
for t in repo2solv testsolv /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing $t (Debian packages libsolv-tools, time)" >&2; exit 2; }
done
cargo build --release --quiet
elsx=$PWD/target/release/elsx
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rec_flag=() solver_flags="solverflags ignorerecommended"
if [ "${RECOMMENDS:-0}" = 1 ]; then rec_flag=(--recommends); solver_flags=""; fi

# measure OUT CMD... : runs CMD with /usr/bin/time, appends "seconds kib" to OUT.
measure() {
    local out=$1; shift
    /usr/bin/time -f '%e %M' -o "$work/t" "$@" >"$work/stdout" 2>"$work/stderr" || true
    tail -n1 "$work/t" >>"$out"
}
# best FILE: median time and largest memory over the lines of FILE.
best() {
    sort -n -k1,1 "$1" | awk '{ t[NR] = $1; if ($2 > m) m = $2 }
        END { printf "%.3f %d", (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2, m }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "repository: $repo ($(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), median of $runs, recommends ${RECOMMENDS:-0})"
printf '%-13s | %-21s %-21s %-5s | %-21s %-21s %-5s | %-9s %-9s | %s\n' job \
    "libsolv cold" "elsx cold" ratio "testsolv warm" "elsx warm" ratio "mem cold" "mem warm" "packages libsolv/elsx"
for job in "${jobs[@]}"; do
    printf 'repo deb 0 solv deb.solv\nsystem x86_64 rpm\n%s\njob install name %s\n' \
        "$solver_flags" "$job" >"$work/job.t"
    rm -f "$work"/{r2s,ts,ec,ew}
    for _ in $(seq "$runs"); do
        # libsolv cold: the two steps, summed; memory: the larger peak.
        rm -f "$work/deb.solv"
        : >"$work/pair"
        measure "$work/pair" repo2solv -o "$work/deb.solv" "$repo"
        measure "$work/pair" testsolv "$work/job.t"
        awk '{ t += $1; if ($2 > m) m = $2 } END { print t, m }' "$work/pair" >>"$work/r2s"
        # elsx cold: an empty cache directory.
        rm -rf "$work/cache"
        measure "$work/ec" "$elsx" resolve --repo "deb=file://$repo" --install "$job" \
            "${rec_flag[@]}" --cache-dir "$work/cache" --json
    done
    for _ in $(seq "$runs"); do
        measure "$work/ts" testsolv "$work/job.t"
        lp=$(grep -Eo '^[0-9]+ installed packages' "$work/stdout" | cut -d' ' -f1 || true)
        measure "$work/ew" "$elsx" resolve --repo "deb=file://$repo" --install "$job" \
            "${rec_flag[@]}" --cache-dir "$work/cache" --json
        ep=$(grep -c '"name"' "$work/stdout" || true)
        [ "$ep" -gt 0 ] || ep="unsolvable"
    done
    read -r lct lcm <<<"$(best "$work/r2s")"
    read -r ect ecm <<<"$(best "$work/ec")"
    read -r lwt lwm <<<"$(best "$work/ts")"
    read -r ewt ewm <<<"$(best "$work/ew")"
    printf '%-13s | %6.2f s %8d KiB %6.2f s %8d KiB x%-4s | %6.2f s %8d KiB %6.2f s %8d KiB x%-4s | x%-8s x%-8s | %s / %s | load %s\n' \
        "$job" "$lct" "$lcm" "$ect" "$ecm" "$(ratio "$ect" "$lct")" \
        "$lwt" "$lwm" "$ewt" "$ewm" "$(ratio "$ewt" "$lwt")" \
        "$(ratio "$ecm" "$lcm")" "$(ratio "$ewm" "$lwm")" "${lp:-unsolvable}" "$ep" \
        "$(cut -d' ' -f1 /proc/loadavg)"
done
echo "goal (issue 4): cold x1.00 or less, warm x0.50 or less, memory x2.00 or less"
