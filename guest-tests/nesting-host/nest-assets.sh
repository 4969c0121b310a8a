#!/usr/bin/env bash
# The nesting-host guest's assets: installs what the kernel and program builds need (Debian's arm64
# cross compiler, linux-source-7.x from the arm64 guest sources guest-assets.sh adds), builds the
# kernel (build-kernel.sh, cached) and iommufd-nest (build-iommufd-nest.sh, cached), and packs an
# initramfs of busybox, init.sh and the program. Prints "<Image> <initrd>".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "nest-assets: ERROR: $*" >&2; exit 1; }
log() { echo "nest-assets: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# busybox-static:arm64 and the arm64 sources (bookworm-backports, trixie, trixie-backports, sid)
"$here/../boot/guest-assets.sh" 7 >/dev/null || die "guest-assets.sh 7 failed"
need=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross make bc bison flex libssl-dev libelf-dev xz-utils cpio; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -c 'install ok installed' >/dev/null || need+=("$p")
done
if ! dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' 'linux-source-7.*' 2>/dev/null | grep -c '^ii ' >/dev/null; then
    # 7.2 is the version this test was written against; else the newest 7.x the archive has.
    src=$(apt-cache search --names-only '^linux-source-7\.[0-9]+$' 2>/dev/null | awk '{print $1}' | sort -V)
    if grep -qx linux-source-7.2 <<<"$src"; then need+=(linux-source-7.2); else need+=("$(tail -n 1 <<<"$src")"); fi
fi
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
        || die "apt-get install ${need[*]} failed"
fi
image=$(JOBS=${JOBS:-2} NICE=${NICE:-0} "$here/build-kernel.sh") || die "the kernel build failed"
prog=$("$here/build-iommufd-nest.sh") || die "the iommufd-nest build failed"
bb=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu/guest/busybox/bin/busybox
stamp=$(cat "$here/init.sh" "$prog" "$bb" | sha256sum | cut -c1-12)
initrd=$(dirname "$image")/initrd-$stamp.cpio.gz
if [ ! -f "$initrd" ]; then
    ir=$(mktemp -d); trap 'rm -rf "$ir"' EXIT
    mkdir -p "$ir"/{bin,proc,sys,dev,tmp}
    cp "$bb" "$ir/bin/"
    for a in sh mount cat echo ls sleep grep sed readlink basename poweroff; do ln -s busybox "$ir/bin/$a"; done
    cp "$prog" "$ir/iommufd-nest"; cp "$here/init.sh" "$ir/init"; chmod +x "$ir/init"
    (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp" && mv "$initrd.tmp" "$initrd"
fi
echo "$image $initrd"
