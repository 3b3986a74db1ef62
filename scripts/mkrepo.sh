#!/usr/bin/env bash
# mkrepo.sh SPECDIR OUTDIR
#
# Builds every SPECDIR/*.spec with `rpmbuild -bb` in a throw-away _topdir,
# copies the binary RPMs to OUTDIR/<arch>/ and indexes OUTDIR with createrepo_c,
# producing an rpm-md repository (OUTDIR/repodata/repomd.xml).
#
# Sources are inlined in the specs (heredocs in %build/%install). If
# SPECDIR/sources/ exists, its files are copied into SOURCES so specs may use
# Source: tags too.
#
# Environment:
#   MKREPO_COMPRESS    metadata compression for createrepo_c
#                      (--general-compress-type): zstd (default), gz, xz, bz2
#   SOURCE_DATE_EPOCH  build time / clamped mtimes (default 1700000000); also
#                      used as the repomd revision and timestamps, so that
#                      rebuilding gives byte-identical RPMs and repodata.
#   MKREPO_SIGN_KEY    an ASCII-armored OpenPGP secret key without passphrase
#                      (e.g. tests/fixtures/keys/elsx-test.secret.asc): sign the
#                      repository as OBS does, repodata/repomd.xml.asc (detached,
#                      armored, dated SOURCE_DATE_EPOCH, so reproducible) and
#                      repodata/repomd.xml.key (the public key). Needs gpg.
#
# Needs the Debian packages rpm and createrepo-c, gcc for specs that compile
# code, and zstd for zstd metadata when createrepo_c is older than 0.21
# (Debian 12 ships 0.17.3). Works as root and as an ordinary user.
set -euo pipefail

die() { echo "mkrepo.sh: error: $*" >&2; exit 1; }

# True if createrepo_c accepts --general-compress-type zstd (>= 0.21.0).
createrepo_supports_zstd() {
    local v major minor
    v=$(createrepo_c --version 2>/dev/null | sed -n 's/^Version: \([0-9.]*\).*/\1/p')
    major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
    [ -n "$v" ] && { [ "$major" -gt 0 ] || [ "$minor" -ge 21 ]; }
}

# Replace every repodata/*.xml.gz listed in repomd.xml by a zstd-compressed
# HASH-NAME.xml.zst and update <checksum>, <location href> and <size> (the
# open-checksum and open-size of the uncompressed XML stay the same).
recompress_repodata_zstd() {
    local repodata=$1 gz base stem zst_tmp sum size new
    for gz in "$repodata"/*.xml.gz; do
        base=$(basename "$gz")
        stem=${base#*-}             # primary.xml.gz
        stem=${stem%.gz}            # primary.xml
        zst_tmp="$repodata/.$stem.zst.tmp"
        gzip -dc "$gz" | zstd -q -19 --no-progress -o "$zst_tmp" -f
        sum=$(sha256sum "$zst_tmp" | cut -d' ' -f1)
        size=$(stat -c %s "$zst_tmp")
        new="$sum-$stem.zst"
        mv "$zst_tmp" "$repodata/$new"
        touch -d "@$SOURCE_DATE_EPOCH" "$repodata/$new"
        awk -v old="repodata/$base" -v new="repodata/$new" -v sum="$sum" -v size="$size" '
            /<data / { inblk = 1; n = 0 }
            inblk { buf[n++] = $0; if ($0 ~ /<\/data>/) flush(); next }
            { print }
            function flush(   i, hit, line) {
                hit = 0
                for (i = 0; i < n; i++) if (index(buf[i], "href=\"" old "\"")) hit = 1
                for (i = 0; i < n; i++) {
                    line = buf[i]
                    if (hit && line ~ /^ *<checksum /) sub(/>[0-9a-f]+</, ">" sum "<", line)
                    if (hit && line ~ /^ *<location /) sub(/href="[^"]*"/, "href=\"" new "\"", line)
                    if (hit && line ~ /^ *<size>/) sub(/>[0-9]+</, ">" size "<", line)
                    print line
                }
                inblk = 0; n = 0
            }' "$repodata/repomd.xml" >"$repodata/repomd.xml.tmp"
        mv "$repodata/repomd.xml.tmp" "$repodata/repomd.xml"
        rm -f "$gz"
    done
    grep -q '\.xml\.gz"' "$repodata/repomd.xml" && die "failed to rewrite $repodata/repomd.xml for zstd"
    return 0
}

# A throw-away GNUPGHOME holding the secret key KEYFILE; prints its path, and
# the key's fingerprint on the second line.
signing_home() {
    local key=$1 home fpr
    [ -f "$key" ] || die "signing key '$key' does not exist"
    command -v gpg >/dev/null 2>&1 || die "gpg not found: install the Debian package gpg"
    home=$(mktemp -d "${TMPDIR:-/tmp}/mkrepo-gpg.XXXXXX")
    GNUPGHOME=$home gpg --batch --quiet --import "$key" 2>/dev/null ||
        die "gpg could not import the signing key $key"
    fpr=$(GNUPGHOME=$home gpg --batch --with-colons --list-secret-keys |
        awk -F: '/^fpr/ { print $10; exit }')
    [ -n "$fpr" ] || die "$key holds no secret key"
    printf '%s\n%s\n' "$home" "$fpr"
}

# Signs REPODIR/repodata/repomd.xml with the secret key KEYFILE: repomd.xml.asc
# (detached, armored, dated SOURCE_DATE_EPOCH) and repomd.xml.key.
sign_repomd() {
    local repodata=$1/repodata key=$2 home fpr
    { read -r home; read -r fpr; } < <(signing_home "$key")
    rm -f "$repodata/repomd.xml.asc" "$repodata/repomd.xml.key"
    GNUPGHOME=$home gpg --batch --quiet --yes --faked-system-time "${SOURCE_DATE_EPOCH}!" \
        --local-user "$fpr" --detach-sign --armor \
        --output "$repodata/repomd.xml.asc" "$repodata/repomd.xml" 2>/dev/null ||
        die "gpg could not sign $repodata/repomd.xml"
    GNUPGHOME=$home gpg --batch --armor --export "$fpr" >"$repodata/repomd.xml.key"
    touch -d "@$SOURCE_DATE_EPOCH" "$repodata/repomd.xml.asc" "$repodata/repomd.xml.key"
    rm -rf "$home"
}

[ $# -eq 2 ] || die "usage: $0 SPECDIR OUTDIR"
specdir=$1
outdir=$2

for tool in rpmbuild createrepo_c; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: install the Debian packages rpm and createrepo-c (apt-get install rpm createrepo-c)"
done

[ -d "$specdir" ] || die "spec directory '$specdir' does not exist"
shopt -s nullglob
specs=("$specdir"/*.spec)
shopt -u nullglob
[ ${#specs[@]} -gt 0 ] || die "no *.spec files in '$specdir'"

compress=${MKREPO_COMPRESS:-zstd}
case $compress in
    zstd|gz|xz|bz2) ;;
    *) die "MKREPO_COMPRESS='$compress' not supported (use zstd, gz, xz or bz2)" ;;
esac

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
# Keep the build environment stable across machines and users.
export LC_ALL=C TZ=UTC
umask 022

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mkrepo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}
if [ -d "$specdir/sources" ]; then
    cp -a "$specdir/sources/." "$tmp/SOURCES/"
fi

# Debian's rpm keeps its database under ~/.rpmdb; rpmbuild does not need it,
# but give it a private HOME so nothing of the caller's leaks in or out.
export HOME="$tmp/home"
mkdir -p "$HOME"

rpmbuild_args=(
    --define "_topdir $tmp"
    --define "_tmppath $tmp/tmp"
    --define "_buildhost elsx-fixtures"
    --define "use_source_date_epoch_as_buildtime 1"
    --define "clamp_mtime_to_source_date_epoch 1"
    --define "_build_id_links none"
    --define "debug_package %{nil}"
    --define "_binary_payload w19.zstdio"
    # Debian's brp-compress (man page compression) is a bash script with a
    # /bin/sh shebang; under dash it fails silently. Run it with bash.
    --define "__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}"
    --target x86_64
    --quiet
)
mkdir -p "$tmp/tmp"

for spec in "${specs[@]}"; do
    log="$tmp/$(basename "$spec").log"
    if ! rpmbuild -bb "${rpmbuild_args[@]}" "$spec" >"$log" 2>&1; then
        cat "$log" >&2
        die "rpmbuild failed for $spec"
    fi
done

mkdir -p "$outdir"
# Start from a clean package set so removed specs do not linger.
rm -rf "$outdir/repodata"
find "$outdir" -name '*.rpm' -type f -delete

built=0
while IFS= read -r -d '' rpm; do
    arch=$(basename "$(dirname "$rpm")")
    mkdir -p "$outdir/$arch"
    cp "$rpm" "$outdir/$arch/"
    # primary.xml records the file mtime: pin it for reproducible repodata.
    touch -d "@$SOURCE_DATE_EPOCH" "$outdir/$arch/$(basename "$rpm")"
    echo "built $arch/$(basename "$rpm")"
    built=$((built + 1))
done < <(find "$tmp/RPMS" -name '*.rpm' -type f -print0 | sort -z)
[ "$built" -gt 0 ] || die "rpmbuild produced no RPMs"

# createrepo_c learned zstd metadata in 0.21; older ones (Debian 12 has
# 0.17.3) reject it. There we write gzip metadata and recompress each file to
# .zst ourselves, fixing up checksum, size and href in repomd.xml.
native=$compress
if [ "$compress" = zstd ] && ! createrepo_supports_zstd; then
    command -v zstd >/dev/null 2>&1 ||
        die "this createrepo_c cannot write zstd metadata and the zstd tool is missing: install the Debian package zstd (or use MKREPO_COMPRESS=gz)"
    native=gz
fi

createrepo_c --quiet --no-database \
    --general-compress-type "$native" \
    --revision "$SOURCE_DATE_EPOCH" --set-timestamp-to-revision \
    "$outdir" >/dev/null

if [ "$native" != "$compress" ]; then
    recompress_repodata_zstd "$outdir/repodata"
fi

if [ -n "${MKREPO_SIGN_KEY:-}" ]; then
    sign_repomd "$outdir" "$MKREPO_SIGN_KEY"
fi

echo "indexed $built packages in $outdir (metadata: $compress${MKREPO_SIGN_KEY:+, signed})"
