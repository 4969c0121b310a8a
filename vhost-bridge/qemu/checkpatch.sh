#!/usr/bin/env bash
# Runs QEMU's own scripts/checkpatch.pl over every patch of the front-end's series (from the
# patched source tree build-qemu.sh prepares). Fails on any error or warning.
#
#   vhost-bridge/qemu/checkpatch.sh [10.0|10.2]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
series=${1:-10.0}
tree=$("$here/build-qemu.sh" --tree "$series")
bad=0
for p in "$here/patches/v$series"/*.patch; do
    out=$(cd "$tree" && perl scripts/checkpatch.pl --no-tree "$p" 2>&1) || true
    summary=$(grep -E '^total: ' <<<"$out" || echo "total: (no summary)")
    if grep -Eq '^total: 0 errors, 0 warnings' <<<"$out"; then
        echo "checkpatch: $(basename "$p"): $summary"
    else
        echo "checkpatch: $(basename "$p"): FAILED: $summary"
        printf '%s\n' "$out" | sed 's/^/    /'
        bad=1
    fi
done
[ "$bad" = 0 ] || { echo "checkpatch: the series has style problems" >&2; exit 1; }
echo "checkpatch: every patch of v$series is clean"
