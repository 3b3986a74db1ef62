#!/usr/bin/env bash
# mkmirror.sh OUTDIR
#
# Builds a local stand-in for download.opensuse.org's openSUSE Tumbleweed
# repositories from the spec files in tests/fixtures/tumbleweed/ (see its
# README.md), laid out like the real mirror:
#
#   OUTDIR/tumbleweed/repo/oss/   the main repository: every package
#                                 (x86_64/, noarch/, repodata/ with zstd
#                                 metadata), from tests/fixtures/tumbleweed/specs
#   OUTDIR/update/tumbleweed/     the update repository: a newer sed, from
#                                 tests/fixtures/tumbleweed/update-specs
#
# These are the two repositories mkosi enables for Tumbleweed (oss and
# oss-update); the shipped repos/opensuse-tumbleweed.repo calls them repo-oss
# and repo-update. So
#
#   elsx build examples/tools-sysext --mirror file://OUTDIR
#
# (or the same over HTTP) builds the Elemental example from it.
#
# Packages are built with scripts/mkrepo.sh. rpmbuild costs about 0.3 s of CPU
# per spec whatever the spec does, so the main repository's specs are split
# into groups built side by side (one mkrepo.sh each, into temporary
# repositories); their RPMs are then gathered into OUTDIR/tumbleweed/repo/oss
# and indexed once, with mkrepo.sh's own createrepo_c/zstd functions. The RPMs
# and repodata of the two repositories are replaced; nothing else in OUTDIR is
# touched.
#
# Environment:
#   SOURCE_DATE_EPOCH  build time of the main repository (default 1795176000,
#                      2026-11-20 12:00 UTC, the snapshot date of the stand-in
#                      openSUSE-release); the update repository is built four
#                      days later. Same epoch and toolchain, same bytes, for any
#                      MKMIRROR_JOBS.
#   MKMIRROR_JOBS      parallel mkrepo.sh runs for the main repository
#                      (default: the number of CPUs, at most 4).
#   MKMIRROR_SIGN_KEY  the secret key both repositories are signed with, as
#                      openSUSE's are (repodata/repomd.xml.asc and .key); default
#                      the published TEST key tests/fixtures/keys/elsx-test.secret.asc
#                      (fingerprint 01C7C39B7EDD1BB084B21D208BCFD7BD2B868DE1),
#                      empty: unsigned. The shipped definitions pin openSUSE's
#                      key, so builds against this mirror trust the test key with
#                      `--repo-key 01C7C39B7EDD1BB084B21D208BCFD7BD2B868DE1`.
#
# Needs what mkrepo.sh needs: the Debian packages rpm, createrepo-c, zstd, gcc.
set -euo pipefail

die() { echo "mkmirror.sh: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
[ -n "$1" ] || die "OUTDIR must not be empty"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkrepo="$here/mkrepo.sh"
fixtures=$(cd "$here/../tests/fixtures/tumbleweed" && pwd)
[ -d "$fixtures/specs" ] || die "missing $fixtures/specs"
[ -d "$fixtures/update-specs" ] || die "missing $fixtures/update-specs"
command -v createrepo_c >/dev/null 2>&1 ||
    die "createrepo_c not found: install the Debian package createrepo-c"

# The indexing and signing functions of mkrepo.sh, so that both scripts write
# repodata the same way.
eval "$(sed -n '/^createrepo_supports_zstd() {/,/^}/p; /^recompress_repodata_zstd() {/,/^}/p; /^signing_home() {/,/^}/p; /^sign_repomd() {/,/^}/p' "$mkrepo")"
declare -F createrepo_supports_zstd recompress_repodata_zstd signing_home sign_repomd >/dev/null ||
    die "$mkrepo no longer defines createrepo_supports_zstd, recompress_repodata_zstd, signing_home and sign_repomd"
sign_key=${MKMIRROR_SIGN_KEY-$here/../tests/fixtures/keys/elsx-test.secret.asc}

mkdir -p "$1"
out=$(cd "$1" && pwd)
oss="$out/tumbleweed/repo/oss"
update="$out/update/tumbleweed"

epoch=${SOURCE_DATE_EPOCH:-1795176000}
case $epoch in ''|*[!0-9]*) die "SOURCE_DATE_EPOCH='$epoch' is not a number of seconds" ;; esac
update_epoch=$((epoch + 4 * 86400))

jobs=${MKMIRROR_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $jobs in ''|*[!0-9]*|0) die "MKMIRROR_JOBS='$jobs' is not a positive number" ;; esac
[ "$jobs" -le 4 ] || jobs=4

start=$(date +%s%N)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkmirror.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Deal the main repository's specs round-robin into spec directories of
# symlinks (each with the shared sources/).
shopt -s nullglob
specs=("$fixtures"/specs/*.spec)
shopt -u nullglob
[ ${#specs[@]} -gt 0 ] || die "no *.spec files in $fixtures/specs"
[ "$jobs" -le ${#specs[@]} ] || jobs=${#specs[@]}
for ((g = 0; g < jobs; g++)); do
    mkdir -p "$tmp/g$g/specs"
    ln -s "$fixtures/specs/sources" "$tmp/g$g/specs/sources"
done
i=0
for spec in "${specs[@]}"; do
    ln -s "$spec" "$tmp/g$((i % jobs))/specs/"
    i=$((i + 1))
done

pids=()
for ((g = 0; g < jobs; g++)); do
    SOURCE_DATE_EPOCH=$epoch MKREPO_COMPRESS=gz \
        "$mkrepo" "$tmp/g$g/specs" "$tmp/g$g/repo" >"$tmp/g$g/log" 2>&1 &
    pids+=($!)
done
SOURCE_DATE_EPOCH=$update_epoch MKREPO_SIGN_KEY=$sign_key \
    "$mkrepo" "$fixtures/update-specs" "$update" >"$tmp/update.log" 2>&1 &
update_pid=$!

failed=0
for ((g = 0; g < jobs; g++)); do
    if ! wait "${pids[$g]}"; then
        cat "$tmp/g$g/log" >&2
        failed=1
    fi
done
if ! wait "$update_pid"; then
    cat "$tmp/update.log" >&2
    failed=1
fi
[ "$failed" -eq 0 ] || die "building the mirror failed (mkrepo.sh output above)"

# Gather the main repository: start from a clean package set, as mkrepo.sh does.
mkdir -p "$oss"
rm -rf "$oss/repodata"
find "$oss" -name '*.rpm' -type f -delete
echo "== $oss (tumbleweed/repo/oss, SOURCE_DATE_EPOCH=$epoch, $jobs jobs)"
built=0
while IFS= read -r -d '' rpm; do
    arch=$(basename "$(dirname "$rpm")")
    mkdir -p "$oss/$arch"
    # -p keeps the mtime mkrepo.sh pinned to SOURCE_DATE_EPOCH (primary.xml records it).
    cp -p "$rpm" "$oss/$arch/"
    echo "built $arch/$(basename "$rpm")"
    built=$((built + 1))
done < <(find "$tmp"/g*/repo -name '*.rpm' -type f -printf '%P\t%p\0' | sort -z | cut -z -f2-)
[ "$built" -gt 0 ] || die "no RPMs were built"

export SOURCE_DATE_EPOCH=$epoch
native=zstd
createrepo_supports_zstd || native=gz
createrepo_c --quiet --no-database \
    --general-compress-type "$native" \
    --revision "$SOURCE_DATE_EPOCH" --set-timestamp-to-revision \
    "$oss" >/dev/null
if [ "$native" != zstd ]; then
    command -v zstd >/dev/null 2>&1 ||
        die "this createrepo_c cannot write zstd metadata and the zstd tool is missing: install the Debian package zstd"
    recompress_repodata_zstd "$oss/repodata"
fi
if [ -n "$sign_key" ]; then
    sign_repomd "$oss" "$sign_key"
fi
echo "indexed $built packages in $oss (metadata: zstd${sign_key:+, signed})"

echo "== $update (update/tumbleweed, SOURCE_DATE_EPOCH=$update_epoch)"
cat "$tmp/update.log"

ms=$((($(date +%s%N) - start) / 1000000))
printf 'mirror ready in %d.%03d s: %s\n' $((ms / 1000)) $((ms % 1000)) "$out"
echo "  elsx build examples/tools-sysext --mirror file://$out${sign_key:+ --repo-key 01C7C39B7EDD1BB084B21D208BCFD7BD2B868DE1}"
