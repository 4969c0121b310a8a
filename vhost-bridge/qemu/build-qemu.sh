#!/usr/bin/env bash
# Build qemu-system-aarch64 from Debian's QEMU source with the iommu-emu front-end, a patch series
# (vhost-bridge/qemu/patches/<series>/*.patch, `git format-patch` output) applied with `git am`,
# and cache the binary keyed by a hash of the series, this script and the Debian source version.
# Prints the binary's path on stdout; everything else goes to stderr.
#
#   vhost-bridge/qemu/build-qemu.sh                 # QEMU 10.0 (Debian trixie's), the primary target
#   vhost-bridge/qemu/build-qemu.sh 10.2            # QEMU 10.2 (Debian sid's source)
#   vhost-bridge/qemu/build-qemu.sh --tree 10.0     # only prepare the patched source tree, print its path
#   QEMU_DEB_VERSION=1:10.0.13+ds-0+deb13u1 ...     # pin a Debian source version
#
# Needs root for apt (build dependencies, deb-src entries); the rest is unprivileged.
# Work tree: ${IOMMU_EMU_QEMU_WORK:-~/.cache/iommu-emu/qemu-src}; cache:
# ${XDG_CACHE_HOME:-~/.cache}/iommu-emu/qemu-<hash>/qemu-system-aarch64.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu
work=${IOMMU_EMU_QEMU_WORK:-$cache_root/qemu-src}
jobs=${JOBS:-2}
tree_only=
series=10.0
for a in "$@"; do
    case $a in
        --tree) tree_only=1 ;;
        10.0|10.2) series=$a ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "build-qemu: unknown argument '$a' (want 10.0, 10.2 or --tree)" >&2; exit 2 ;;
    esac
done
patches=$here/patches/v$series

log() { echo "build-qemu: $*" >&2; }
die() { echo "build-qemu: ERROR: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
[ -d "$patches" ] || die "no patch series at $patches"

# --- apt: deb-src entries for the suites whose QEMU we build, and the build tools -------------
# QEMU 10.0 is trixie's; 10.2's source is sid's. Only deb-src entries are added for them (no binary
# packages from newer suites reach this Debian 12 host); meson >= 1.5 comes from bookworm-backports
# (10.0), and 10.2's configure wants meson >= 1.9, an architecture-independent package from sid.
apt_updated=
apt_update() { [ -n "$apt_updated" ] || { as_root apt-get update -qq >&2 || die "apt-get update failed"; apt_updated=1; }; }
ensure_sources() {
    local dst=/etc/apt/sources.list.d/iommu-emu-qemu.sources
    local want="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Architectures: arm64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    # sid's binary list (arm64 only, so nothing of this amd64 host comes from it) is for the
    # architecture-independent meson 10.2 wants; newer suites never win over bookworm's packages.
    local pin=/etc/apt/preferences.d/iommu-emu
    local pin_want="Package: *
Pin: release n=sid
Pin-Priority: 50

Package: *
Pin: release n=trixie
Pin-Priority: 50"
    if [ "$(cat "$pin" 2>/dev/null)" != "$pin_want" ]; then
        printf '%s\n' "$pin_want" | as_root tee "$pin" >/dev/null
    fi
    if [ "$(cat "$dst" 2>/dev/null)" != "$want" ]; then
        log "adding $dst (deb-src trixie/sid for QEMU's source, bookworm-backports and sid for meson)"
        printf '%s\n' "$want" | as_root tee "$dst" >/dev/null
        apt_updated=; apt_update
    fi
    has_series() { apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ {print $2}' | grep -c "^1:$series\." >/dev/null; }
    has_series || apt_update
    has_series || die "apt-cache showsrc qemu: no QEMU $series source package"
}

build_deps=(build-essential dpkg-dev ninja-build libglib2.0-dev libpixman-1-dev libfdt-dev
            zlib1g-dev flex bison pkg-config python3-venv libslirp-dev git)
ensure_build_deps() {
    local missing=() p
    for p in "${build_deps[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt_update
        log "installing build dependencies: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install ${missing[*]} failed"
    fi
    local need=1.5.0 meson_v
    [ "$series" = 10.0 ] || need=1.9.0
    meson_v=$(meson --version 2>/dev/null || echo 0)
    if ! printf '%s\n%s\n' "$need" "$meson_v" | sort -V -C; then
        apt_update
        if [ "$series" = 10.0 ]; then
            log "installing meson >= $need from bookworm-backports"
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                -t bookworm-backports meson >&2 || die "apt-get install -t bookworm-backports meson failed"
        else
            # sid's meson is Architecture: all and depends on python3 and ninja only: unpack it
            # beside the build instead of installing a package from sid on this host.
            local mdir=$work/meson-sid
            if [ ! -x "$mdir/usr/bin/meson" ]; then
                log "unpacking meson from sid (QEMU 10.2 wants >= $need)"
                mkdir -p "$mdir" && (cd "$mdir" && rm -f meson_*.deb && apt-get download -qq meson/sid >&2 \
                    && dpkg-deb -x meson_*.deb .) || die "could not fetch sid's meson"
            fi
            export PATH=$mdir/usr/bin:$PATH
            export PYTHONPATH=$(ls -d "$mdir"/usr/lib/python3/dist-packages)${PYTHONPATH:+:$PYTHONPATH}
        fi
    fi
}

# The newest Debian source of the series (or the pinned one).
resolve_version() {
    if [ -n "${QEMU_DEB_VERSION:-}" ]; then echo "$QEMU_DEB_VERSION"; return; fi
    apt-cache showsrc qemu | awk '/^Version:/ {print $2}' | grep "^1:$series\." | grep -v '~bpo' | sort -V | tail -n 1
}

source_hash() {
    (cd "$here" && { echo "$1"; find "patches/v$series" build-qemu.sh -type f | LC_ALL=C sort | xargs sha256sum; }) \
        | sha256sum | cut -c1-16
}

ensure_sources
version=$(resolve_version)
[ -n "$version" ] || die "could not resolve a QEMU $series source version"
hash=$(source_hash "$version")
out=$cache_root/qemu-$hash
if [ -z "$tree_only" ] && [ -x "$out/qemu-system-aarch64" ] && [ -z "${FORCE:-}" ]; then
    log "cached: $out (qemu $version)"
    echo "$out/qemu-system-aarch64"; exit 0
fi
ensure_build_deps

# --- the source tree: Debian's source as a git base commit (tag debian-source), the series applied
# with git am. One tree per QEMU version: a new series is applied in a scratch clone and checked out
# over the tree, which rewrites only the files that differ, so ninja rebuilds only what changed.
upstream=${version#*:}; upstream=${upstream%-*}
srcdir=$work/qemu-$upstream
git_id=(-c user.name=build -c user.email=build@localhost)
if [ ! -f "$srcdir/.iommu-emu-extracted" ]; then
    mkdir -p "$work/dl"
    if ! ls "$work"/dl/qemu_"${version#*:}".dsc >/dev/null 2>&1; then
        log "fetching qemu=$version source into $work/dl"
        (cd "$work/dl" && apt-get source --download-only -qq "qemu=$version" >&2) \
            || die "apt-get source qemu=$version failed"
    fi
    rm -rf "$srcdir"
    dpkg-source --no-check -x "$work"/dl/qemu_"${version#*:}".dsc "$srcdir" >&2 || die "dpkg-source -x failed"
    # The +ds tarball lacks the edk2 blobs meson expects when bzip2 is installed.
    for f in aarch64-code arm-vars arm-code i386-code i386-secure-code i386-vars x86_64-code \
             x86_64-secure-code riscv-code riscv-vars loongarch64-code loongarch64-vars; do
        [ -e "$srcdir/pc-bios/edk2-$f.fd.bz2" ] || : > "$srcdir/pc-bios/edk2-$f.fd.bz2"
    done
    (cd "$srcdir" && git init -q && printf '/build/\n/.iommu-emu-*\n' >> .git/info/exclude && git add -A \
        && git "${git_id[@]}" commit -qm "QEMU $version (Debian source)" && git tag debian-source) \
        || die "could not make $srcdir a git tree"
    touch "$srcdir/.iommu-emu-extracted"
fi
if [ "$(cat "$srcdir/.iommu-emu-series" 2>/dev/null)" != "$hash" ]; then
    log "applying the series $patches"
    scratch=$(mktemp -d)
    (git clone -q --shared "$srcdir" "$scratch/q" && cd "$scratch/q" && git checkout -q debian-source \
        && git "${git_id[@]}" am -q "$patches"/*.patch >&2) \
        || { rm -rf "$scratch"; die "the patch series $patches does not apply to QEMU $version"; }
    (cd "$srcdir" && git fetch -q "$scratch/q" HEAD && git checkout -q -f FETCH_HEAD) \
        || { rm -rf "$scratch"; die "could not check the series out in $srcdir"; }
    rm -rf "$scratch"
    echo "$hash" > "$srcdir/.iommu-emu-series"
fi
if [ -n "$tree_only" ]; then echo "$srcdir"; exit 0; fi

build=$srcdir/build
if [ ! -f "$build/build.ninja" ]; then
    log "configuring (aarch64-softmmu only)"
    mkdir -p "$build"
    (cd "$build" && ../configure --python=/usr/bin/python3 --target-list=aarch64-softmmu \
        --disable-docs --disable-werror --disable-user --disable-gtk --disable-sdl --disable-opengl \
        --disable-spice --disable-vnc --disable-curses --disable-rust --disable-install-blobs >&2) \
        || die "configure failed"
fi
log "building with ninja -j$jobs (a first build takes ~12 min on 2 cores)"
ninja -C "$build" -j"$jobs" qemu-system-aarch64 >&2 || die "ninja failed"
mkdir -p "$out"
strip -o "$out/qemu-system-aarch64.tmp" "$build/qemu-system-aarch64"
mv "$out/qemu-system-aarch64.tmp" "$out/qemu-system-aarch64"
echo "$version" > "$out/QEMU_VERSION"
# Keep the three newest cached binaries.
ls -1dt "$cache_root"/qemu-[0-9a-f]*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
log "built: $out"
echo "$out/qemu-system-aarch64"
