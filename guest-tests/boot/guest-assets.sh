#!/usr/bin/env bash
# Fetches the arm64 guest kernels from Debian's archive and builds a busybox initramfs for each.
#   guest-assets.sh 6.1|6.12|7|7-16k    prints "<vmlinuz> <initrd> <abi>" for that kernel series
# Kernels: the newest of the series in bookworm (6.1), bookworm-backports or trixie (6.12),
# trixie-backports or sid (7.x, 4 KiB pages, or 16 KiB pages with "-16k"); the ABI name
# (linux-image-<abi>) is resolved with apt-cache at run time. Any failure is fatal: nothing is skipped.
set -euo pipefail
series=${1:?usage: guest-assets.sh 6.1|6.12|7|7-16k}
flavour=arm64
case $series in *-16k) flavour=arm64-16k; series=${series%-16k} ;; esac
here=$(cd "$(dirname "$0")" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu/guest
mkdir -p "$cache"
log() { echo "guest-assets: $*" >&2; }
die() { echo "guest-assets: ERROR: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_update=
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"; as_root dpkg --add-architecture arm64; need_update=1
fi
guest_src=/etc/apt/sources.list.d/iommu-emu-guest.sources
if [ ! -f "$guest_src" ]; then
    # Same host and keyring as the main Debian source; the newer suites for arm64 packages only, so
    # nothing of this amd64 host is ever taken from them.
    src=/etc/apt/sources.list.d/debian.sources
    uri=$(awk '/^URIs:/ {print $2; exit}' "$src"); key=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
    [ -n "$uri" ] && [ -n "$key" ] || die "cannot derive a source from $src"
    log "adding $guest_src"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports trixie trixie-backports sid\nComponents: main\nArchitectures: arm64\nSigned-By: %s\n' \
        "$uri" "$key" | as_root tee "$guest_src" >/dev/null
    as_root rm -f /etc/apt/sources.list.d/iommu-emu-backports.sources  # the earlier, all-architectures one
    need_update=1
fi
[ -z "$need_update" ] || as_root apt-get update -qq || die "apt-get update failed"
for p in kmod cpio xz-utils; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -c 'install ok installed' >/dev/null \
        || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >&2 \
        || die "apt-get install $p failed"
done

# The newest linux-image-<series>.*-<flavour> that the linux-image-<flavour> metapackage depends on,
# in any suite.
abi=$(apt-cache show "linux-image-$flavour:arm64" 2>/dev/null \
      | sed -n "s/^Depends: .*linux-image-\([0-9][^ ,]*-$flavour\)\( .*\|,.*\|\)\$/\1/p" \
      | { grep "^${series//./\\.}\." || true; } | sort -V | tail -n 1)
[ -n "$abi" ] || die "no linux-image-${series}.*-$flavour in apt's lists (are bookworm-backports, trixie and sid reachable?)"
kdir=$cache/linux-$abi
if [ ! -f "$kdir/.done" ]; then
    log "downloading linux-image-$abi:arm64"
    rm -rf "$kdir"; mkdir -p "$kdir/dl"
    # Newer kernels split the image package: linux-image-<abi> then depends on linux-binary-<abi>
    # (vmlinuz) and linux-modules-<abi>; take those too.
    parts=$(apt-cache show "linux-image-$abi:arm64" 2>/dev/null | sed -n 's/^Depends: //p' | head -n 1 | tr ',' '\n' \
            | sed -n "s/^ *\(linux-\(binary\|modules\)-$abi\)\( .*\)\?\$/\1/p")
    for pkg in "linux-image-$abi" $parts; do
        (cd "$kdir/dl" && apt-get download -qq "$pkg:arm64" >&2) || die "apt-get download $pkg failed"
    done
    for deb in "$kdir"/dl/*.deb; do dpkg-deb -x "$deb" "$kdir/root" || die "dpkg-deb -x $deb failed"; done
    rm -rf "$kdir/dl"; touch "$kdir/.done"
fi
# boot/vmlinuz-<kver>, or (split packages) usr/lib/modules/<kver>/vmlinuz
vmlinuz=$({ ls "$kdir"/root/boot/vmlinuz-* "$kdir"/root/usr/lib/modules/*/vmlinuz 2>/dev/null || true; } | head -n 1)
[ -n "$vmlinuz" ] || die "no vmlinuz in linux-image-$abi"
case $vmlinuz in */vmlinuz-*) kver=${vmlinuz##*/vmlinuz-} ;; *) kver=$(basename "$(dirname "$vmlinuz")") ;; esac
# Modules live in lib/modules, or usr/lib/modules in merged-/usr packages (trixie and later).
mroot=$kdir/root; [ -d "$mroot/lib/modules" ] || mroot=$kdir/root/usr
# The package carries no modules.dep (its postinst runs depmod): make one for the closure below.
[ -f "$mroot/lib/modules/$kver/modules.dep" ] || depmod -b "$mroot" "$kver" || die "depmod of $kver failed"

bbdir=$cache/busybox
if [ ! -x "$bbdir/bin/busybox" ]; then
    log "downloading busybox-static:arm64"
    rm -rf "$bbdir"; mkdir -p "$bbdir/dl"
    (cd "$bbdir/dl" && apt-get download -qq busybox-static:arm64 >&2) || die "apt-get download busybox-static:arm64 failed"
    dpkg-deb -x "$bbdir"/dl/*.deb "$bbdir/root"; mkdir -p "$bbdir/bin"
    # bin/ or, merged-/usr (trixie and later), usr/bin/
    cp "$(ls "$bbdir"/root/bin/busybox "$bbdir"/root/usr/bin/busybox 2>/dev/null | head -n 1)" "$bbdir/bin/" \
        || die "no busybox in busybox-static"
fi

# The initramfs: busybox, the modules below with their dependency closure (decompressed, depmod),
# and init.sh as /init. Rebuilt when init.sh or this script changes.
modules="virtio_pci virtio_iommu virtio_blk virtio_rng nvme e1000e"  # the IOMMU before the devices it serves
on_demand="pci_stub"  # in the initramfs, loaded only by /init's fault case (it claims the edu device)
stamp=$(cat "$here/init.sh" "$0" | sha256sum | cut -c1-12)
initrd=$kdir/initrd-$stamp.cpio.gz
if [ ! -f "$initrd" ]; then
    log "building $initrd"
    ir=$(mktemp -d); trap 'rm -rf "$ir"' EXIT
    mkdir -p "$ir"/{bin,sbin,proc,sys,dev,tmp,lib/modules/"$kver"}
    cp "$bbdir/bin/busybox" "$ir/bin/"
    for a in sh mount modprobe insmod dd md5sum sha256sum cat echo ls readlink basename sleep grep devmem \
             dmesg poweroff printf wc head sed awk cut tr date seq test ip ping tftp; do ln -s busybox "$ir/bin/$a"; done
    present=
    for m in $modules $on_demand; do
        deps=$(modprobe -d "$mroot" -S "$kver" --show-depends "$m" 2>/dev/null || true)
        if [ -z "$deps" ]; then log "module $m: not in $kver"; continue; fi
        if ! grep -c '^insmod' <<<"$deps" >/dev/null; then log "module $m: built in"; continue; fi
        case " $modules " in *" $m "*) present="$present $m" ;; esac
        for f in $(awk '/^insmod/ {print $2}' <<<"$deps"); do
            rel=${f#"$mroot"}; rel=${rel#/usr}; dst=$ir${rel%.xz}
            mkdir -p "$(dirname "$dst")"
            case "$f" in *.xz) xz -dc "$f" > "$dst" ;; *) cp "$f" "$dst" ;; esac
        done
    done
    cp "$mroot"/lib/modules/"$kver"/modules.{order,builtin} "$ir/lib/modules/$kver/" 2>/dev/null || true
    depmod -b "$ir" "$kver" 2>/dev/null || die "depmod failed"
    echo "$present" > "$ir/modules.list"
    cp "$here/init.sh" "$ir/init"; chmod +x "$ir/init"
    (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp" && mv "$initrd.tmp" "$initrd"
fi
echo "$vmlinuz $initrd $abi"
