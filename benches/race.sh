#!/usr/bin/env bash
# The race (issue 8): the same sysext built two ways from one local mirror on 127.0.0.1, cold
# and warm, with per-step times and the ratios.
#
#   benches/race.sh            (as root: zypper and rpm need it; builds elsx --release, or
#                               races ELSX=PATH)
#
#  elsx:      elsx build race.toml (base race-base, extension race-tool-1 race-tool-4,
#             squashfs zstd-15 in a GPT disk image)
#  toolchain: what mkosi drives for BaseTrees= + Overlay=yes: zypper --root installs the base;
#             zypper installs the tools into an overlayfs whose lower dir is the base; the
#             upper dir minus the base as mkosi's mount_base_trees() does it (paths the base has
#             are dropped, directories take the base's mode and times, only /usr and /opt,
#             empty directories removed); extension-release; mksquashfs (zstd-15, 128 KiB blocks,
#             every CPU); a GPT image with sfdisk and dd of the partition.
#  cold:      empty elsx cache; empty zypper cache and new roots.
#  warm:      elsx cache kept; zypper's cache kept (keeppackages=1, filled by the cold run),
#             new roots.
#
# The repository (tens of base packages, a few tools, hundreds of MiB of payload from a seeded
# generator, benches/race_specs.py) is built once with rpmbuild and createrepo_c and cached under
# target/race/. Sizes: RACE_BASE (packages) x RACE_BASE_MIB, RACE_TOOLS x RACE_TOOLS_MIB.
# Prints times, never fails on one.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
work=${RACE_DIR:-$top/target/race}
nbase=${RACE_BASE:-38} base_mib=${RACE_BASE_MIB:-8}
ntools=${RACE_TOOLS:-4} tools_mib=${RACE_TOOLS_MIB:-12} seed=${RACE_SEED:-8}
key=v1-b${nbase}x${base_mib}-t${ntools}x${tools_mib}-s$seed
repo=$work/repo-$key
die() { echo "race.sh: $*" >&2; exit 2; }

[[ $(id -u) == 0 ]] || die "the toolchain side (zypper --root, rpm, overlayfs) needs root"
declare -A need=([rpmbuild]=rpm [createrepo_c]=createrepo-c [python3]=python3
    [mksquashfs]=squashfs-tools [unsquashfs]=squashfs-tools [sfdisk]=fdisk [zypper]=zypper
    [unshare]=util-linux)
missing=()
for cmd in "${!need[@]}"; do command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}"); done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The repository, once.
if [[ ! -e $repo/.complete ]]; then
    echo "generating the repository $repo (once)"
    rm -rf "$work/gen" "$repo"
    python3 benches/race_specs.py "$work/gen" --base "$nbase" --base-mib "$base_mib" \
        --tools "$ntools" --tools-mib "$tools_mib" --seed "$seed"
    bash scripts/mkrepo.sh "$work/gen/specs" "$repo" | tail -1
    rm -rf "$work/gen"
    touch "$repo/.complete"
fi
# Before SOURCE_DATE_EPOCH is set: C build scripts (zstd-sys, ...) rerun when it changes.
# ELSX=PATH races a binary already built.
if [[ -z ${ELSX:-} ]]; then
    cargo build --release --quiet
fi
elsx=$(realpath "${ELSX:-$top/target/release/elsx}")
export SOURCE_DATE_EPOCH=1700000000 LC_ALL=C

# The mirror: a threaded HTTP server on a free port of 127.0.0.1.
run=$work/run
mkdir -p "$run"
rm -f "$run/port"
python3 - "$repo" "$run/port" <<'EOF' &
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
h = functools.partial(Quiet, directory=sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s $run/port ]] && break; sleep 0.1; done
url=http://127.0.0.1:$(cat "$run/port")/

payload=$(find "$repo" -name '*.rpm' -printf '%s\n' | awk '{ s += $1 } END { print s }')
installed=$(rpm -qp --qf '%{SIZE}\n' "$repo"/x86_64/*.rpm 2>/dev/null | awk '{ s += $1 } END { print s }')
echo "repository: $(find "$repo" -name '*.rpm' | wc -l) packages, $((payload >> 20)) MiB of RPMs," \
    "$((installed >> 20)) MiB installed; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A T C
now() { date +%s.%N; }
# cpu_mark; cpu_so_far: user + system seconds of this shell and every child it has waited for
# (`times` must run in this shell, not in a command substitution's).
cpu_mark() { times >"$run/times"; }
cpu_so_far() {
    awk '{ for (i = 1; i <= NF; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } }
        END { printf "%.2f", s }' "$run/times"
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# step SIDE/MODE NAME COMMAND...: runs COMMAND (output to a log), records and prints its time.
step() {
    local id=$1 name=$2 start log c0
    shift 2
    log=$run/$(tr '/ ' '__' <<<"$id-$name").log
    cpu_mark
    c0=$(cpu_so_far)
    start=$(now)
    if ! "$@" >"$log" 2>"$log.err"; then
        tail -n 30 "$log" "$log.err" >&2
        die "$id: $name failed (log: $log)"
    fi
    T[$id/$name]=$(secs "$start" "$(now)")
    cpu_mark
    C[$id/$name]=$(secs "$c0" "$(cpu_so_far)")
    C[$id/total]=$(secs 0 "$(awk -v a="${C[$id/total]:-0}" -v b="${C[$id/$name]}" 'BEGIN { print a + b }')")
    printf '  %-10s %-28s %8.2f s %8.2f s CPU\n' "$id" "$name" "${T[$id/$name]}" "${C[$id/$name]}"
}

# The base subtracted from the overlay's upper dir, as mkosi's mount_base_trees() does.
subtract() { # UPPER BASE
    local upper=$1 base=$2 p rel q
    local -a drop=()
    # A sysext holds /usr and /opt only.
    find "$upper" -mindepth 1 -maxdepth 1 ! -name usr ! -name opt -exec rm -rf {} +
    while IFS= read -r -d '' p; do
        rel=${p#"$upper"/}
        q=$base/$rel
        [[ -e $q || -L $q ]] || continue
        if [[ -d $p && ! -L $p ]]; then
            [[ -d $q && ! -L $q ]] || { echo "/$rel is a directory in the overlay but not in the base tree"; return 1; }
            chmod --reference="$q" "$p"
            touch -h -r "$q" "$p"
        else
            drop+=("$p") # also whiteouts: a sysext cannot delete
        fi
    done < <(find "$upper" -mindepth 1 -print0)
    if ((${#drop[@]})); then printf '%s\0' "${drop[@]}" | xargs -0 rm -f; fi
    find "$upper" -mindepth 1 -depth -type d -empty -delete
    mkdir -p "$upper/usr/lib/extension-release.d"
    printf 'ID=opensuse-tumbleweed\nVERSION_ID=20261126\nSYSEXT_ID=race\nSYSEXT_VERSION_ID=1.0\nARCHITECTURE=x86-64\n' \
        >"$upper/usr/lib/extension-release.d/extension-release.race"
}

gpt() { # SQUASHFS IMAGE: one root partition, 1 MiB aligned, like systemd-repart's
    local sqfs=$1 img=$2 sectors
    sectors=$((($(stat -c %s "$sqfs") + 4095) / 4096 * 8))
    rm -f "$img"
    truncate -s $(((2048 + sectors + 2048) * 512)) "$img"
    printf 'label: gpt\nunit: sectors\nstart=2048, size=%d, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, name="root-x86-64"\n' \
        "$sectors" | sfdisk --quiet "$img"
    dd if="$sqfs" of="$img" bs=1M seek=$((2048 * 512)) oflag=seek_bytes conv=notrunc status=none
}

toolchain() { # cold|warm
    local mode=$1 d=$run/toolchain
    local id=zypper/$mode
    umount -q "$d/merged" 2>/dev/null || true
    rm -rf "$d/base" "$d/upper" "$d/work" "$d/merged" "$d/out"
    [[ $mode == cold ]] && rm -rf "$d/cache"
    mkdir -p "$d/repos.d" "$d/base" "$d/upper" "$d/work" "$d/merged" "$d/out"
    # mkosi's repository settings (installer/zypper.py): keeppackages, no autorefresh.
    printf '[race]\nname=race\nbaseurl=%s\nenabled=1\ngpgcheck=0\nautorefresh=0\nkeeppackages=1\n' \
        "$url" >"$d/repos.d/race.repo"
    printf '[main]\nrpm.install.excludedocs = no\nrepo.refresh.delay = 2880\n' >"$d/zypp.conf"
    export ZYPP_CONF=$d/zypp.conf RPM_FORCE_DEBIAN=1
    local -a z=(zypper --reposd-dir "$d/repos.d" --cache-dir "$d/cache" --non-interactive
        --no-gpg-checks)
    local -a inst=(install --download in-advance --no-recommends --force-resolution)
    local start
    start=$(now)
    step "$id" "refresh (metadata)" "${z[@]}" --root "$d/base" refresh
    step "$id" "install base" "${z[@]}" --root "$d/base" --no-refresh "${inst[@]}" race-base
    step "$id" "overlay + install tools" unshare -m -- bash -c '
        d=$1; shift
        mount -t overlay overlay -o "lowerdir=$d/base,upperdir=$d/upper,workdir=$d/work" "$d/merged"
        "$@"' _ "$d" "${z[@]}" --root "$d/merged" --no-refresh "${inst[@]}" race-tool-1 race-tool-4
    step "$id" "subtract base" subtract "$d/upper" "$d/base"
    step "$id" "mksquashfs" mksquashfs "$d/upper" "$d/out/race.sqfs" -comp zstd \
        -Xcompression-level 15 -b 131072 -processors "$(nproc)" -noappend -no-progress
    step "$id" "gpt image (sfdisk, dd)" gpt "$d/out/race.sqfs" "$d/out/race.raw"
    T[$id/total]=$(secs "$start" "$(now)")
}

recipe=$run/race.toml
cat >"$recipe" <<'EOF'
# The race's extension: the base and the tools as zypper installs them in benches/race.sh.
[extension]
name = "race"
version = "1.0"

[repos]
use = ["race"]

[base]
packages = ["race-base"]

[packages]
install = ["race-tool-1", "race-tool-4"]

[output]
format = "squashfs"
ddi = true
EOF

elsx_side() { # cold|warm
    local mode=$1 d=$run/elsx id=elsx/$mode start
    [[ $mode == cold ]] && rm -rf "$d/cache"
    rm -rf "$d/out"
    mkdir -p "$d"
    start=$(now)
    step "$id" "elsx build" "$elsx" build "$recipe" --repo "race=$url" --cache-dir "$d/cache" \
        -o "$d/out" --json
    T[$id/total]=$(secs "$start" "$(now)")
    # The stages, from the summary the build printed on stdout.
    python3 - "$run/$(tr '/ ' '__' <<<"$id-elsx build").log" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text)
for t in j["timings"]:
    print(f"    {t['stage']:<10} {t['seconds']:8.2f} s {t['items']:>8} items {t['bytes'] / 2**20:>9.1f} MiB {t['cached']:>5} cached")
EOF
}

for mode in cold warm; do
    echo "$mode:"
    toolchain "$mode"
    elsx_side "$mode"
done

# The same extension both ways? Compare the file lists (the elsx image's partition starts at
# the offset sfdisk reports).
elsx_img=$run/elsx/out/race.raw
off=$(sfdisk --json "$elsx_img" | python3 -c 'import json,sys; t=json.load(sys.stdin)["partitiontable"]; print(t["partitions"][0]["start"] * t.get("sectorsize", 512))')
unsquashfs -o "$off" -lc "$elsx_img" | sed 's|^squashfs-root||' | sort >"$run/elsx.list"
unsquashfs -lc "$run/toolchain/out/race.sqfs" | sed 's|^squashfs-root||' | sort >"$run/toolchain.list"
if cmp -s "$run/elsx.list" "$run/toolchain.list"; then
    echo "same $(wc -l <"$run/elsx.list") files and symlinks in both images"
else
    echo "the images differ in their file lists:"
    diff "$run/toolchain.list" "$run/elsx.list" | head -20 || true
fi
printf 'image sizes: elsx %d B, toolchain %d B\n' "$(stat -c %s "$elsx_img")" \
    "$(stat -c %s "$run/toolchain/out/race.raw")"

for mode in cold warm; do
    awk -v m="$mode" -v z="${T[zypper/$mode/total]}" -v e="${T[elsx/$mode/total]}" \
        -v zc="${C[zypper/$mode/total]}" -v ec="${C[elsx/$mode/total]}" \
        'BEGIN { printf "%s: toolchain %.2f s, elsx %.2f s, ratio %.1fx; CPU (user + system) toolchain %.2f s, elsx %.2f s, ratio %.1fx\n",
            m, z, e, z / e, zc, ec, zc / ec }'
done
