#!/usr/bin/env bash
# Builds a small arm64 Linux 7.x kernel Image for the nesting-host guest test, from Debian's
# linux-source-7.x package (Debian's own arm64 kernels ship with CONFIG_IOMMUFD unset), and prints
# the Image's path on stdout (progress goes to stderr).
#
#   guest-tests/nesting-host/build-kernel.sh            # cached; builds on the first call
#   JOBS=2 NICE=0 guest-tests/nesting-host/build-kernel.sh
#
# Needs (Debian): linux-source-7.x, gcc-aarch64-linux-gnu, make, bc, bison, flex, libssl-dev,
# libelf-dev, xz-utils. The config is arm64 allnoconfig + kernel.config (next to this script);
# every option of kernel.config must survive olddefconfig or the build stops.
# Cache: ${XDG_CACHE_HOME:-~/.cache}/iommu-emu/kernel-<hash>, the hash covering this script,
# kernel.config and the source package's version. Defaults: JOBS=1, NICE=19 (a shared machine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/kernel.config
jobs=${JOBS:-1}
nice_level=${NICE:-19}

die() { echo "build-kernel.sh: $*" >&2; exit 1; }
log() { echo "build-kernel.sh: $*" >&2; }

# The newest installed linux-source-7.x (a tarball under /usr/src).
pkg=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-source-7.*' 2>/dev/null \
        | awk '$1 == "ii" {print $2}' | sort -V | tail -1 || true)
[ -n "$pkg" ] || die "no linux-source-7.x package is installed: 'apt-cache search linux-source', then 'apt-get install linux-source-7.N' (from sid or trixie-backports)"
version=$(dpkg-query -W -f='${Version}' "$pkg")
tarball=$(dpkg -L "$pkg" | grep -E '^/usr/src/linux-source-7\.[0-9]+\.tar\.xz$' | head -1)
[ -f "$tarball" ] || die "$pkg $version is installed but its tarball is missing"
command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc not found: apt-get install gcc-aarch64-linux-gnu"
for t in make bc bison flex xz; do command -v "$t" >/dev/null || die "$t not found: apt-get install $t"; done

hash=$( { cat "$0" "$fragment"; echo "$pkg $version"; } | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu/kernel-$hash
image=$cache/Image
if [ -f "$image" ]; then
    echo "$image"
    exit 0
fi
mkdir -p "$cache"
src=$cache/src
if [ ! -f "$src/Makefile" ]; then
    log "unpacking $tarball ($pkg $version) into $src"
    rm -rf "$src" "$cache/unpack"
    mkdir -p "$cache/unpack"
    tar -C "$cache/unpack" -xf "$tarball"
    mv "$cache/unpack"/linux-source-7.* "$src"
    rmdir "$cache/unpack"
fi
k() { nice -n "$nice_level" make -C "$src" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- "$@"; }
log "configuring: allnoconfig + $(basename "$fragment")"
k -s allnoconfig
(cd "$src" && ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- ./scripts/kconfig/merge_config.sh -m -O "$src" .config "$fragment" >/dev/null)
k -s olddefconfig
missing=""
while IFS= read -r line; do
    case $line in CONFIG_*=*) grep -qxF "$line" "$src/.config" || missing="$missing ${line%%=*}";; esac
done < "$fragment"
[ -z "$missing" ] || die "these options of kernel.config did not survive olddefconfig (a dependency is missing):$missing"
log "building Image with -j$jobs at nice $nice_level (log: $cache/build.log)"
if ! k -j"$jobs" Image > "$cache/build.log" 2>&1; then
    tail -30 "$cache/build.log" >&2
    die "the kernel build failed; see $cache/build.log"
fi
cp "$src/arch/arm64/boot/Image" "$image.tmp"
mv "$image.tmp" "$image"
k -s kernelrelease > "$cache/RELEASE" 2>/dev/null || true
echo "$pkg $version" > "$cache/SOURCE"
echo "$image"
