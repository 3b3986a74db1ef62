#!/usr/bin/env bash
# fetch_compare.sh [N] [RUNS]
#
# Downloads a repository of N real RPMs (default 300, built here with rpmbuild, indexed with
# createrepo_c, served by `python3 -m http.server` on 127.0.0.1) into a cold cache, with
#   elsx resolve --repo bench=URL --install ... --download-only
# and with
#   zypper --root DIR --non-interactive --no-gpg-checks install --download-only ...
# (its own repository added with `zypper --root DIR ar`), RUNS times each (default 3),
# alternating, and prints the times, their medians and the ratio elsx / zypper.
# Both fetch repomd.xml and primary, resolve, and download and verify every package.
#
# The packages (one spec with N subpackages of 16 KiB to 512 KiB of incompressible data) are
# built once and kept under target/fetch-bench/ so reruns are quick. Needs the Debian packages
# rpm, createrepo-c and zypper (run as root, missing ones are installed with apt-get).
# Times are printed, never asserted.
set -euo pipefail

n=${1:-300}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$root/target/fetch-bench
repo=$work/repo-$n

die() { echo "fetch_compare.sh: $*" >&2; exit 1; }

need=()
command -v rpmbuild >/dev/null || need+=(rpm)
command -v createrepo_c >/dev/null || need+=(createrepo-c)
command -v zypper >/dev/null || need+=(zypper)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
    else
        die "missing Debian packages: ${need[*]} (apt-get install ${need[*]})"
    fi
fi

# --- the repository ------------------------------------------------------------------------
if [ ! -f "$repo/repodata/repomd.xml" ]; then
    echo "building $n packages into $repo (once)" >&2
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetchbench.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS,tmp,home}
    python3 - "$n" "$tmp/SOURCES/payload" <<'EOF'
import os, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out)
rnd = random.Random(1700000000)
for i in range(1, n + 1):
    size = rnd.randint(16, 512) * 1024
    with open(os.path.join(out, "%04d.bin" % i), "wb") as f:
        f.write(rnd.randbytes(size))
EOF
    {
        printf 'Name: fbench\nVersion: 1.0\nRelease: 1\nSummary: fetch benchmark\nLicense: MIT\nBuildArch: noarch\n\n%%description\nfetch benchmark\n\n'
        for i in $(seq -f %04g 1 "$n"); do
            printf '%%package -n fbench-%s\nSummary: payload %s\n\n%%description -n fbench-%s\npayload %s\n\n' "$i" "$i" "$i" "$i"
        done
        printf '%%install\nmkdir -p %%{buildroot}/usr/share/fbench\ncp %%{_sourcedir}/payload/*.bin %%{buildroot}/usr/share/fbench/\n\n'
        for i in $(seq -f %04g 1 "$n"); do
            printf '%%files -n fbench-%s\n/usr/share/fbench/%s.bin\n\n' "$i" "$i"
        done
    } >"$tmp/SPECS/fbench.spec"
    HOME=$tmp/home SOURCE_DATE_EPOCH=1700000000 rpmbuild -bb --quiet \
        --define "_topdir $tmp" --define "_tmppath $tmp/tmp" \
        --define "_binary_payload w1.zstdio" --define "_build_id_links none" \
        --define "debug_package %{nil}" --define "__os_install_post %{nil}" \
        "$tmp/SPECS/fbench.spec" >/dev/null
    rm -rf "$repo.new"
    mkdir -p "$repo.new/noarch"
    find "$tmp/RPMS" -name 'fbench-*.rpm' -exec mv {} "$repo.new/noarch/" \;
    createrepo_c --quiet --no-database "$repo.new" >/dev/null
    mv "$repo.new" "$repo"
fi
count=$(find "$repo/noarch" -name '*.rpm' | wc -l)
bytes=$(du -sb "$repo/noarch" | cut -f1)
[ "$count" -eq "$n" ] || die "$repo holds $count packages, not $n"

# --- elsx ----------------------------------------------------------------------------------
(cd "$root" && cargo build --release --quiet)
elsx=$root/target/release/elsx

# --- the server ----------------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$repo" >/dev/null 2>&1 &
server=$!
scratch=$(mktemp -d "${TMPDIR:-/tmp}/fetchbench-run.XXXXXX")
cleanup() { kill "$server" 2>/dev/null || true; rm -rf "$scratch" "${tmp:-}"; }
trap cleanup EXIT
url=http://127.0.0.1:$port/
for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('${url}repodata/repomd.xml')" 2>/dev/null && break
    sleep 0.1
done

names=()
for i in $(seq -f %04g 1 "$n"); do names+=("fbench-$i"); done
installs=()
for p in "${names[@]}"; do installs+=(--install "$p"); done

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

run_elsx() {
    local cache=$scratch/elsx-cache-$1
    local t0 t1
    t0=$(now)
    NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 "$elsx" -q resolve --repo "bench=$url" "${installs[@]}" \
        --download-only --cache-dir "$cache" >/dev/null
    t1=$(now)
    local got
    got=$(find "$cache/rpms-v1" -type f | wc -l)
    [ "$got" -eq "$n" ] || die "elsx cached $got packages, not $n"
    rm -rf "$cache"
    elapsed "$t0" "$t1"
}

run_zypper() {
    local d=$scratch/zypper-root-$1
    mkdir -p "$d"
    rpm --root "$d" --initdb 2>/dev/null || true
    zypper --root "$d" --non-interactive --quiet ar -G "$url" bench >/dev/null
    local t0 t1
    t0=$(now)
    zypper --root "$d" --non-interactive --no-gpg-checks --quiet install --download-only \
        "${names[@]}" >/dev/null 2>"$scratch/zypper.err" ||
        { cat "$scratch/zypper.err" >&2; die "zypper failed"; }
    t1=$(now)
    local got
    got=$(find "$d/var/cache/zypp/packages" -name '*.rpm' | wc -l)
    [ "$got" -eq "$n" ] || die "zypper downloaded $got packages, not $n"
    rm -rf "$d"
    elapsed "$t0" "$t1"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "fetching $n packages ($((bytes / 1024 / 1024)) MiB) from $url, cold cache, $runs runs each"
e=() z=()
for r in $(seq "$runs"); do
    e+=("$(run_elsx "$r")")
    z+=("$(run_zypper "$r")")
    printf 'run %d: elsx %.2f s, zypper %.2f s\n' "$r" "${e[-1]}" "${z[-1]}"
done
me=$(median "${e[@]}")
mz=$(median "${z[@]}")
printf 'median: elsx %.2f s, zypper %.2f s, ratio elsx/zypper %.2f\n' "$me" "$mz" "$(awk -v a="$me" -v b="$mz" 'BEGIN { print a / b }')"
