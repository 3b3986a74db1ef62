#!/usr/bin/env bash
# The whole check, as the README states it: reference tools present, formatting, clippy with
# warnings denied, every test. Installs missing Debian packages when run as root; otherwise
# says exactly which are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A need=(
    [rpmbuild]=rpm [rpm2cpio]=rpm2cpio [createrepo_c]=createrepo-c [cpio]=cpio [zstd]=zstd
    [unsquashfs]=squashfs-tools [mksquashfs]=squashfs-tools [fsck.erofs]=erofs-utils
    [veritysetup]=cryptsetup-bin [sfdisk]=fdisk [systemd-dissect]=systemd-container
    [testsolv]=libsolv-tools [gcc]=gcc [bwrap]=bubblewrap [restorecon]=policycoreutils
    [openssl]=openssl
)
missing=()
for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get install ${missing[*]}" >&2
        exit 2
    fi
fi

# Real openSUSE data for the corpus tests (../shared/corpus beside the checkout, as in CI).
if [[ -z "${ELSX_CORPUS:-}" && -d ../shared/corpus ]]; then
    export ELSX_CORPUS=$(cd ../shared/corpus && pwd)
fi
if [[ -z "${ELSX_DATA:-}" && -d ../shared/data ]]; then
    export ELSX_DATA=$(cd ../shared/data && pwd)
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"
# Benchmark smoke: small inputs, figures printed, never failing on a time.
cargo bench --locked --profile dev --bench stages -- --smoke
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
