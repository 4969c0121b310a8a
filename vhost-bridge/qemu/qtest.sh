#!/usr/bin/env bash
# Runs QEMU's own virtio-iommu qtests (tests/qtest/virtio-iommu-test.c through qos-test) in the
# patched QEMU 10.0 tree, twice: against QEMU's built-in virtio-iommu and against the iommu-emu daemon
# through the front-end (the same -device virtio-iommu-pci, with iommu-emu= naming a chardev to the
# daemon and guest RAM as a shared memfd). Every test must pass both ways.
#
#   vhost-bridge/qemu/qtest.sh          # needs the daemon jar (mvn package) and build-qemu.sh's tree
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { echo "qtest: $*" >&2; }
die() { echo "qtest: ERROR: $*" >&2; exit 1; }

tree=$("$here/build-qemu.sh" --tree 10.0)
build=$tree/build
[ -f "$build/build.ninja" ] || "$here/build-qemu.sh" >/dev/null
log "building qos-test in $build"
ninja -C "$build" -j"${JOBS:-2}" qemu-system-aarch64 tests/qtest/qos-test >/dev/null || die "ninja qos-test failed"
jar=$root/vhost-bridge/target/iommu-emu.jar
[ -f "$jar" ] || die "no $jar: run mvn -B -ntp package -DskipTests first"

work=$(mktemp -d)
daemon_pid=
cleanup() { [ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# QTEST_QEMU_BINARY must be a path ending in -aarch64 (qtest takes the target from its name), so the
# extra options go in wrapper scripts. Debian's +ds source has no option ROMs: the virt board's
# default NIC gets none. With a virtio-iommu in the command line, the "emu" wrapper adds the chardev,
# the device's iommu-emu property and a shared memfd for the 128 MiB of RAM qtest's virt board has.
mkdir -p "$work/builtin" "$work/emu"
cat > "$work/builtin/qemu-system-aarch64" <<EOF
#!/bin/sh
exec "$build/qemu-system-aarch64" -global virtio-net-pci.romfile= "\$@"
EOF
cat > "$work/emu/qemu-system-aarch64" <<EOF
#!/bin/sh
case " \$* " in
*" virtio-iommu-pci"*)
    exec "$build/qemu-system-aarch64" -global virtio-net-pci.romfile= \\
        -chardev socket,id=ie0,path="$work/vmm.sock" -global virtio-iommu-device.iommu-emu=ie0 \\
        -object memory-backend-memfd,id=iemem,size=128M,share=on -machine memory-backend=iemem "\$@" ;;
esac
exec "$build/qemu-system-aarch64" -global virtio-net-pci.romfile= "\$@"
EOF
chmod +x "$work"/*/qemu-system-aarch64

"$root/bin/iommu-emu" --socket "$work/vmm.sock" --control "$work/ctl.sock" --model virtio-iommu \
    </dev/null > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 300); do [ -S "$work/vmm.sock" ] && break; sleep 0.1; done
[ -S "$work/vmm.sock" ] || { cat "$work/daemon.log" >&2; die "the daemon did not start"; }

base=/aarch64/virt/generic-pcihost/pci-bus-generic/pci-bus/virtio-iommu-pci/virtio-iommu/virtio-iommu-tests
passed=0 failed=0
for how in builtin emu; do
    for t in config attach_detach map_unmap; do
        out=$(cd "$build" && QTEST_QEMU_BINARY="$work/$how/qemu-system-aarch64" timeout 120 \
              tests/qtest/qos-test -p "$base/$t" 2>&1) || true
        if grep -q "^ok 1 $base/$t\$" <<<"$out" && ! grep -q '^not ok' <<<"$out"; then
            log "$how $t: ok"; passed=$((passed + 1))
        else
            log "$how $t: FAILED"; printf '%s\n' "$out" | sed 's/^/    /' >&2; failed=$((failed + 1))
        fi
    done
done
grep -q 'session 1: VMM connected' "$work/daemon.log" || { failed=$((failed + 1)); log "the daemon saw no VMM"; }

# Migration is refused, with the blocker's sentence, while the IOMMU's state lives in the daemon.
qmp=$(printf '%s\n' '{"execute":"qmp_capabilities"}' \
        '{"execute":"migrate","arguments":{"uri":"exec:cat >/dev/null"}}' '{"execute":"quit"}' \
      | timeout 60 "$work/builtin/qemu-system-aarch64" -M virt,memory-backend=iemem2 -nographic -S \
          -object memory-backend-memfd,id=iemem2,size=128M,share=on -m 128M \
          -chardev socket,id=ie0,path="$work/vmm.sock" -device virtio-iommu-pci,iommu-emu=ie0 \
          -qmp stdio -monitor none -serial none 2>&1) || true
if grep -q '"error".*iommu-emu: the virtio-iommu.s state lives in the iommu-emu daemon, which cannot migrate it yet' <<<"$qmp"; then
    log "migration refused with the blocker's reason: ok"; passed=$((passed + 1))
else
    log "migration was not refused as expected"; printf '%s\n' "$qmp" | sed 's/^/    /' >&2; failed=$((failed + 1))
fi
echo "qtest: $passed passed, $failed failed"
[ "$failed" = 0 ] || die "QEMU's virtio-iommu qtests failed"
