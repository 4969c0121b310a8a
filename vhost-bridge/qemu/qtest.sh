#!/usr/bin/env bash
# Runs QEMU's own virtio-iommu qtests (tests/qtest/virtio-iommu-test.c through qos-test) in the
# patched QEMU 10.0 tree, twice: against QEMU's built-in virtio-iommu and against the iommu-emu daemon
# through the front-end (the same -device virtio-iommu-pci, with iommu-emu= naming a chardev to the
# daemon and guest RAM as a shared memfd). Every test must pass both ways. Then two checks of the
# front-end through QEMU's qtest protocol: a migration that carries the daemon's device state, and
# an SMMUv3 MSI aimed at nothing reported back to the daemon (GERROR.MSI_GERROR_ABT_ERR).
#
#   vhost-bridge/qemu/qtest.sh          # needs the daemon jar (mvn package) and build-qemu.sh's tree
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { echo "qtest: $*" >&2; }
die() { echo "qtest: ERROR: $*" >&2; exit 1; }

tree=$("$here/build-qemu.sh" --tree 10.0)
build=$tree/build
[ -f "$build/build.ninja" ] || "$here/build-qemu.sh"
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

# The device state migrates (protocol version 9, docs/qemu.md "Migration"): a migration of the
# stopped VM completes, and its stream carries the front-end's vmstate subsection with the blob the
# daemon saved.
"$work/builtin/qemu-system-aarch64" -M virt,memory-backend=iemem2 -nographic -S \
    -object memory-backend-memfd,id=iemem2,size=128M,share=on -m 128M \
    -chardev socket,id=ie0,path="$work/vmm.sock" -device virtio-iommu-pci,iommu-emu=ie0 \
    -qmp "unix:$work/qmp.sock,server=on,wait=off" -monitor none -serial none > "$work/migrate-qemu.log" 2>&1 &
mig_qemu=$!
for _ in $(seq 100); do [ -S "$work/qmp.sock" ] && break; sleep 0.1; done
mig=$(timeout 60 python3 "$root/guest-tests/boot/qmp.py" "$work/qmp.sock" migrate "exec:cat > $work/migration.bin" 2>&1) || true
timeout 10 python3 "$root/guest-tests/boot/qmp.py" "$work/qmp.sock" quit >/dev/null 2>&1 || kill "$mig_qemu" 2>/dev/null || true
wait "$mig_qemu" 2>/dev/null || true
if grep -q '^migrate: completed' <<<"$mig" && grep -aq 'virtio-iommu-device/iommu-emu' "$work/migration.bin" \
        && grep -q 'device state saved' "$work/daemon.log"; then
    log "migration carries the daemon's state: ok"; passed=$((passed + 1))
else
    log "migration did not carry the daemon's state"; printf '%s\n' "$mig" | sed 's/^/    /' >&2
    sed 's/^/    /' "$work/migrate-qemu.log" >&2; failed=$((failed + 1))
fi
# An MSI that finds nothing at its address (IHI 0070 §7.5, docs/protocol.md §4 IOMMU_MSI_ABORTED):
# through QEMU's qtest protocol (no CPU runs; register and RAM accesses come from the main loop), on
# the daemon's `max` profile (SMMU_IDR0.MSI = 1), the GERROR interrupt's MSI is aimed at 0x70000000,
# where the virt board with 256 MiB of RAM has nothing. An illegal command raises CMDQ_ERR; the
# GERROR MSI is delivered by the front-end, which finds nothing there and says so; the SMMU then
# shows MSI_GERROR_ABT_ERR too: SMMU_GERROR = 0x81 (bit 0 CMDQ_ERR, bit 7 MSI_GERROR_ABT_ERR).
"$root/bin/iommu-emu" --socket "$work/smmu.sock" --control none --model smmuv3 --profile max \
    </dev/null > "$work/daemon-smmu.log" 2>&1 &
smmu_pid=$!
for _ in $(seq 300); do [ -S "$work/smmu.sock" ] && break; sleep 0.1; done
smmu=0x09050000                                   # the virt board's SMMUv3 (hw/arm/virt.c VIRT_SMMU)
coproc QT { exec timeout 60 "$build/qemu-system-aarch64" -machine virt,iommu=smmuv3,memory-backend=m,accel=qtest \
    -m 256M -object memory-backend-memfd,id=m,size=256M,share=on -display none -serial none -monitor none -nic none \
    -chardev socket,id=ie1,path="$work/smmu.sock" -global arm-smmuv3.iommu-emu=ie1 \
    -qtest stdio 2>"$work/qemu-msi.log"; }
# one qtest command; its answer in $qt_reply ("OK", "OK 0x..."): the coprocess's fds exist only in this shell
qt() { echo "$*" >&"${QT[1]}"; read -r -t 10 qt_reply <&"${QT[0]}" || qt_reply="no answer"; }
qt writeq $((smmu + 0x68)) 0x70000000 # SMMU_GERROR_IRQ_CFG0: ADDR
qt writel $((smmu + 0x70)) 0x1234 # SMMU_GERROR_IRQ_CFG1: DATA
qt writel $((smmu + 0x50)) 0x1 # SMMU_IRQ_CTRL.GERROR_IRQEN
qt writeq 0x41000000 0xff # a command with an opcode no SMMU has
qt writeq 0x41000008 0x0
qt writeq $((smmu + 0x90)) 0x41000005 # SMMU_CMDQ_BASE: 0x41000000, LOG2SIZE 5
qt writel $((smmu + 0x20)) 0x8 # SMMU_CR0.CMDQEN
qt writel $((smmu + 0x98)) 0x1 # SMMU_CMDQ_PROD: one command
gerror=
for _ in $(seq 50); do
    qt readl $((smmu + 0x60)); gerror=${qt_reply#OK }     # SMMU_GERROR
    [ "$gerror" = 0x0000000000000081 ] && break
    sleep 0.1
done
qt readl $((smmu + 0x9c)); qt_cons=${qt_reply#OK }     # SMMU_CMDQ_CONS: ERR = CERROR_ILL (1) in [30:24]
kill "$QT_PID" 2>/dev/null || true; wait "$QT_PID" 2>/dev/null || true
kill "$smmu_pid" 2>/dev/null || true; wait "$smmu_pid" 2>/dev/null || true
if [ "$gerror" = 0x0000000000000081 ] && [ "${qt_cons#0x}" != "$qt_cons" ] && [ $(( (qt_cons >> 24) & 0x7f )) = 1 ] \
        && grep -q 'could not deliver an MSI (address=0x70000000 data=0x1234 source=gerror activated=MSI_GERROR_ABT_ERR)' "$work/daemon-smmu.log"; then
    log "an aborted SMMUv3 MSI reaches SMMU_GERROR (0x81): ok"; passed=$((passed + 1))
else
    log "aborted MSI: SMMU_GERROR '$gerror' (want 0x81), SMMU_CMDQ_CONS '$qt_cons' (want ERR 1)"
    sed 's/^/    /' "$work/daemon-smmu.log" "$work/qemu-msi.log" >&2; failed=$((failed + 1))
fi
echo "qtest: $passed passed, $failed failed"
[ "$failed" = 0 ] || die "QEMU's virtio-iommu qtests failed"
