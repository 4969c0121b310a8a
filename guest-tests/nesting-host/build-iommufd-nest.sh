#!/usr/bin/env bash
# Builds iommufd-nest, a static arm64 program, with Debian's cross compiler and the uAPI headers
# (include/uapi/linux/iommufd.h, vfio.h) of the newest installed linux-source-7.x, the kernel the
# guest runs (build-kernel.sh). Prints the binary's path on stdout.
#   guest-tests/nesting-host/build-iommufd-nest.sh [OUTPUT]   (default: next to the kernel Image's cache)
# Needs: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, linux-source-7.x, xz-utils.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "build-iommufd-nest.sh: $*" >&2; exit 1; }
command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc not found: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
pkg=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-source-7.*' 2>/dev/null \
        | awk '$1 == "ii" {print $2}' | sort -V | tail -1 || true)
[ -n "$pkg" ] || die "no linux-source-7.x package is installed (apt-get install linux-source-7.N)"
version=$(dpkg-query -W -f='${Version}' "$pkg")
tarball=$(dpkg -L "$pkg" | grep -E '^/usr/src/linux-source-7\.[0-9]+\.tar\.xz$' | head -1)
top=$(basename "$tarball" .tar.xz)
hash=$( { cat "$0" "$here/iommufd-nest.c"; echo "$pkg $version"; } | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu/iommufd-nest-$hash
out=${1:-$cache/iommufd-nest}
if [ -x "$cache/iommufd-nest" ] && [ -z "${1:-}" ]; then
    echo "$out"; exit 0
fi
mkdir -p "$cache/include/linux" "$(dirname "$out")"
if [ ! -f "$cache/include/linux/iommufd.h" ]; then
    tar -C "$cache" -xJf "$tarball" "$top/include/uapi/linux/iommufd.h" "$top/include/uapi/linux/vfio.h"
    mv "$cache/$top/include/uapi/linux/iommufd.h" "$cache/$top/include/uapi/linux/vfio.h" "$cache/include/linux/"
    rm -rf "${cache:?}/$top"
fi
# -D__user=: what headers_install strips from the raw uAPI headers.
aarch64-linux-gnu-gcc -static -O2 -Wall -Wextra -Werror -std=gnu11 -D__user= -I"$cache/include" \
    -o "$out" "$here/iommufd-nest.c"
echo "$out"
