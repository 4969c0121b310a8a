#!/usr/bin/env bash
# Build qemu-system-aarch64 from Debian's QEMU source with the iommu-emu front-end
# (vhost-bridge/qemu/src/*) compiled in, and cache the binary keyed by a hash of our
# QEMU-side sources and the Debian source version. Prints the binary's path on stdout.
#
#   vhost-bridge/qemu/build-qemu.sh            # build (or reuse the cache), print the path
#   QEMU_DEB_VERSION=1:7.2+dfsg-7+deb12u13 ... # pin a source version (default: newest bookworm one)
#
# Needs root for apt (build dependencies, a deb-src entry); everything else is unprivileged.
# Work tree: ${IOMMU_EMU_QEMU_WORK:-/work/qemu-build} (or ~/.cache/iommu-emu/qemu-src);
# cache: ${XDG_CACHE_HOME:-~/.cache}/iommu-emu/qemu-<hash>/qemu-system-aarch64.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu
work=${IOMMU_EMU_QEMU_WORK:-$cache_root/qemu-src}
jobs=${JOBS:-2}

log() { echo "build-qemu: $*" >&2; }
die() { echo "build-qemu: ERROR: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- apt: a deb-src entry mirroring the deb entries of debian.sources (deb822) -----------------
ensure_deb_src() {
    local src=/etc/apt/sources.list.d/debian.sources dst=/etc/apt/sources.list.d/iommu-emu-deb-src.sources
    has_src() { apt-cache showsrc qemu 2>/dev/null | grep -c '^Version:' >/dev/null; }
    if ! has_src; then
        [ -f "$src" ] || die "no $src to derive a deb-src entry from; add a deb-src line for bookworm"
        log "adding $dst (Types: deb-src, same URIs/Suites/Components/Signed-By as $src)"
        sed -e 's/^Types:.*/Types: deb-src/' "$src" | as_root tee "$dst" >/dev/null
        as_root apt-get update -qq || die "apt-get update failed"
    fi
    has_src || die "apt-cache showsrc qemu: no source package"
}

build_deps=(build-essential dpkg-dev ninja-build meson libglib2.0-dev libpixman-1-dev libfdt-dev
            zlib1g-dev flex bison pkg-config python3-venv libslirp-dev)
ensure_build_deps() {
    local missing=()
    for p in "${build_deps[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing build dependencies: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install ${missing[*]} failed"
    fi
}

# The newest source version from the main suites (not backports: our hooks target 7.2's layout).
resolve_version() {
    if [ -n "${QEMU_DEB_VERSION:-}" ]; then echo "$QEMU_DEB_VERSION"; return; fi
    apt-cache showsrc qemu | awk '/^Version:/ {print $2}' | grep -v '~bpo' | sort -V | tail -n 1
}

# --- our sources and their hash -------------------------------------------------------------------
our_files() { (cd "$here" && find src hooks.sh build-qemu.sh -type f | LC_ALL=C sort); }
source_hash() {
    (cd "$here" && { echo "$1"; our_files | xargs sha256sum; }) | sha256sum | cut -c1-16
}

ensure_deb_src
version=$(resolve_version)
[ -n "$version" ] || die "could not resolve a qemu source version"
hash=$(source_hash "$version")
out=$cache_root/qemu-$hash
if [ -x "$out/qemu-system-aarch64" ] && [ -z "${FORCE:-}" ]; then
    log "cached: $out (qemu $version)"
    echo "$out/qemu-system-aarch64"; exit 0
fi
ensure_build_deps

upstream=${version#*:}; upstream=${upstream%-*}
srcdir=$work/qemu-$upstream
if [ ! -f "$srcdir/.iommu-emu-extracted" ]; then
    mkdir -p "$work/dl"
    log "fetching qemu=$version source into $work/dl"
    (cd "$work/dl" && apt-get source --download-only -qq "qemu=$version" >&2) || die "apt-get source qemu=$version failed"
    rm -rf "$srcdir"
    dsc=$(ls "$work"/dl/qemu_"${version#*:}".dsc) || die "no .dsc for $version"
    dpkg-source --no-check -x "$dsc" "$srcdir" >&2 || die "dpkg-source -x failed"
    # The +dfsg tarball lacks the edk2 blobs meson expects when bzip2 is installed.
    for f in aarch64-code arm-vars arm-code i386-code i386-secure-code i386-vars x86_64-code x86_64-secure-code riscv-code riscv-vars; do
        [ -e "$srcdir/pc-bios/edk2-$f.fd.bz2" ] || : > "$srcdir/pc-bios/edk2-$f.fd.bz2"
    done
    touch "$srcdir/.iommu-emu-extracted"
fi

# Our files, then the one-line hooks (idempotent).
log "applying iommu-emu files to $srcdir"
(cd "$here/src" && find . -type f | while read -r f; do
    mkdir -p "$srcdir/$(dirname "$f")"
    cmp -s "$f" "$srcdir/$f" || cp "$f" "$srcdir/$f"
done)
bash "$here/hooks.sh" "$srcdir"

build=$srcdir/build-iommu-emu
if [ ! -f "$build/build.ninja" ]; then
    log "configuring (aarch64-softmmu only)"
    mkdir -p "$build"
    (cd "$build" && ../configure --target-list=aarch64-softmmu --disable-docs --disable-werror \
        --disable-user --disable-gtk --disable-sdl --disable-opengl --disable-spice --disable-vnc \
        --disable-curses --disable-install-blobs >&2) || die "configure failed"
fi
log "building with ninja -j$jobs (a first build takes ~10 min on 2 cores)"
ninja -C "$build" -j"$jobs" qemu-system-aarch64 >&2 || die "ninja failed"
mkdir -p "$out"
strip -o "$out/qemu-system-aarch64.tmp" "$build/qemu-system-aarch64"   # the build tree keeps the symbols
mv "$out/qemu-system-aarch64.tmp" "$out/qemu-system-aarch64"
echo "$version" > "$out/QEMU_VERSION"
# Keep the two newest cached binaries (the one just built and its predecessor).
ls -1dt "$cache_root"/qemu-[0-9a-f]*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
log "built: $out"
echo "$out/qemu-system-aarch64"
