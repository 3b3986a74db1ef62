#!/usr/bin/env bash
# Regenerates examples/demo/repo/ (RPMs + zstd rpm-md metadata) from
# examples/demo/specs/. Works from any directory. Needs the Debian packages
# rpm, createrepo-c, zstd and gcc.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../../scripts/mkrepo.sh" "$here/specs" "$here/repo"
