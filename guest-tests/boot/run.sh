#!/usr/bin/env bash
# Boots stock Debian arm64 kernels under the patched QEMU with the iommu-emu daemon as the guest's
# IOMMU, and the same guest with QEMU's built-in IOMMUs for comparison; checks the console.
#
#   guest-tests/boot/run.sh                 # every case
#   guest-tests/boot/run.sh smmuv3-6.1-default builtin-smmuv3-6.1    # named cases
#   guest-tests/boot/run.sh --list
#   guest-tests/boot/run.sh --bench         # also writes the "Guest boots" section of BENCHMARKS.md
# Exit status 0 only if every case passed. Work files: $IOMMU_EMU_BOOT_WORK (default /tmp/iommu-emu-boot).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/guest-tests/boot
work=${IOMMU_EMU_BOOT_WORK:-/tmp/iommu-emu-boot}
timeout_s=${IOMMU_EMU_BOOT_TIMEOUT:-300}
mkdir -p "$work"

# name kernel iommu(smmuv3|virtio) frontend(ours|builtin) profile extra
all_cases="
builtin-smmuv3-6.1   6.1  smmuv3 builtin -
smmuv3-6.1-default   6.1  smmuv3 ours    default
smmuv3-6.1-s1-only   6.1  smmuv3 ours    s1-only
smmuv3-6.1-s2-only   6.1  smmuv3 ours    s2-only
smmuv3-6.1-max       6.1  smmuv3 ours    max
builtin-smmuv3-6.12  6.12 smmuv3 builtin -
smmuv3-6.12-default  6.12 smmuv3 ours    default
smmuv3-6.12-s1-only  6.12 smmuv3 ours    s1-only
smmuv3-6.12-s2-only  6.12 smmuv3 ours    s2-only
smmuv3-6.12-max      6.12 smmuv3 ours    max
smmuv3-6.12-fault    6.12 smmuv3 ours    default
builtin-viommu-6.12  6.12 virtio builtin -
viommu-6.12          6.12 virtio ours    default
viommu-6.12-fault    6.12 virtio ours    default
"
bench=
want=()
for a in "$@"; do
    case "$a" in
        --bench) bench=1 ;;
        --list) awk 'NF {print $1}' <<<"$all_cases"; exit 0 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) want+=("$a") ;;
    esac
done

log() { echo "boot: $*" >&2; }
die() { echo "boot: ERROR: $*" >&2; exit 1; }

qemu=${IOMMU_EMU_QEMU:-$("$root/vhost-bridge/qemu/build-qemu.sh")} || die "building QEMU failed"
[ -x "$qemu" ] || die "no QEMU at $qemu"
if [ ! -f "$root/vhost-bridge/target/iommu-emu.jar" ] || [ ! -f "$root/tools/target/benchmarks.jar" ]; then
    (cd "$root" && mvn -B -ntp -q package -DskipTests) || die "building the daemon and tools failed"
fi

# A 64 MiB disk of random bytes, its checksum the guest must reproduce.
disk=$work/disk.img
[ -f "$disk" ] || head -c $((64 << 20)) /dev/urandom > "$disk"
disk_md5=$(md5sum "$disk" | cut -d' ' -f1)

declare -A assets
get_assets() { [ -n "${assets[$1]:-}" ] || assets[$1]=$("$here/guest-assets.sh" "$1") || die "guest assets for $1"; }

daemon_pid=
stop_daemon() {
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=; fi
}
trap stop_daemon EXIT

ctl() { java -cp "$root/tools/target/benchmarks.jar" dev.iommuemu.tools.cli.IommuEmuCtl --control "$cdir/ctl.sock" "$@"; }

results=$work/results.tsv
: > "$results"
failed=()
run_case() { # name kernel iommu frontend profile
    local name=$1 kernel=$2 iommu=$3 frontend=$4 profile=$5
    cdir=$work/$name; rm -rf "$cdir"; mkdir -p "$cdir"
    get_assets "$kernel"
    read -r vmlinuz initrd abi <<<"${assets[$kernel]}"
    local append="console=ttyAMA0 rdinit=/init panic=-1 iommu.strict=1"
    [ "$name" = "${name%-fault}" ] || append="$append iommuemu.wait"
    local machine=virt
    local args=(-cpu max,pauth-impdef=on -smp 1 -m 1G -nographic -nic none -no-reboot
        -object memory-backend-memfd,id=mem,size=1G,share=on
        -kernel "$vmlinuz" -initrd "$initrd" -append "$append"
        $([ "$iommu" = virtio ] && echo "-device virtio-iommu-pci")
        -drive "if=none,id=d0,file=$disk,format=raw,readonly=on"
        -device virtio-blk-pci,drive=d0,iommu_platform=on,disable-legacy=on
        -device virtio-rng-pci,iommu_platform=on,disable-legacy=on)
    case $iommu in
        smmuv3) machine="virt,iommu=smmuv3,memory-backend=mem" ;;
        virtio) machine="virt,memory-backend=mem" ;;  # virtio-iommu-pci comes first (above): the
                                                        # IOMMU must exist when the devices it serves are realized
    esac
    if [ "$frontend" = ours ]; then
        java -jar "$root/vhost-bridge/target/iommu-emu.jar" --socket "$cdir/vmm.sock" --control "$cdir/ctl.sock" \
            --model "$([ "$iommu" = smmuv3 ] && echo smmuv3 || echo virtio-iommu)" --profile "$profile" \
            </dev/null > "$cdir/daemon.log" 2>&1 &
        daemon_pid=$!
        for _ in $(seq 300); do [ -S "$cdir/vmm.sock" ] && [ -S "$cdir/ctl.sock" ] && break; sleep 0.1; done
        [ -S "$cdir/vmm.sock" ] || { cat "$cdir/daemon.log" >&2; die "$name: the daemon did not start"; }
        case $iommu in
            smmuv3) args+=(-global "arm-smmuv3.iommu-emu=$cdir/vmm.sock") ;;
            virtio) args+=(-global "virtio-iommu-device.iommu-emu=$cdir/vmm.sock") ;;
        esac
    fi
    if [ "$name" != "${name%-fault}" ]; then inject_fault "$iommu" & fpid=$!; fi
    log "$name: linux $abi, $iommu ($frontend${profile:+ $profile})"
    echo "$qemu -M $machine ${args[*]}" > "$cdir/cmdline"
    local start; start=$(date +%s%N)
    set +e
    timeout "$timeout_s" "$qemu" -M "$machine" "${args[@]}" </dev/null 2>&1 | while IFS= read -r line; do
        line=${line%$'\r'}; printf '%s\n' "$line"
        case $line in *"T: DONE"*) echo "T: host-boot-ms $(( ($(date +%s%N) - start) / 1000000 ))" ;; esac
    done > "$cdir/console.log"
    set -e
    [ -z "${fpid:-}" ] || { wait "$fpid" || true; fpid=; }
    check_case "$name" "$iommu" "$frontend"
}

inject_fault() { # while the guest waits: a DMA of the virtio-blk endpoint to an unmapped IOVA
    # virtio-blk-pci is 00:01.0 (StreamID 8), or 00:02.0 (endpoint 16) behind virtio-iommu-pci at 00:01.0
    local ep=8; [ "$1" = smmuv3 ] || ep=16
    for _ in $(seq 600); do grep -q "T: waiting" "$cdir/console.log" 2>/dev/null && break; sleep 0.1; done
    java -cp "$root/vhost-bridge/target/iommu-emu.jar" "$here/InjectFault.java" "$cdir/ctl.sock" "$ep" 0xdead0000 \
        > "$cdir/inject.log" 2>&1 || true
}

check_case() {
    local name=$1 iommu=$2 frontend=$3 c=$cdir/console.log fails=()
    t() { sed -n "s/^T: $1 //p" "$c" | head -n 1; }
    grep -q '^T: DONE' "$c" || fails+=("no DONE marker")
    if [ "$iommu" = smmuv3 ]; then
        grep -Eq 'arm-smmu-v3 [^ ]+: ias [0-9]+-bit, oas [0-9]+-bit' "$c" || fails+=("no arm-smmu-v3 probe line")
    else
        grep -Eq 'virtio_iommu virtio[0-9]+: page mask: 0x' "$c" || fails+=("no virtio_iommu page-mask line")
    fi
    local nvirtio; nvirtio=$(grep -c '^T: pci .*vendor=0x1af4' "$c" || true)
    [ "$nvirtio" -ge 2 ] || fails+=("expected >= 2 virtio PCI devices, saw $nvirtio")
    # every virtio device but the virtio-iommu itself (0x1057, virtio 1.x §4.1.2.1: 0x1040 + 23)
    ! grep -v 'device=0x1057' "$c" | grep -q '^T: pci .*vendor=0x1af4.*group=none' || fails+=("a virtio device without an IOMMU group")
    [ "$(t disk-md5)" = "$disk_md5" ] || fails+=("disk checksum $(t disk-md5) != $disk_md5")
    [ "$(t hwrng-bytes)" = 64 ] || fails+=("/dev/hwrng gave '$(t hwrng-bytes)' bytes")
    grep -q 'TLB invalidation policy: strict mode' "$c" || fails+=("iommu.strict=1 not in effect")
    if [ "$frontend" = ours ]; then
        ctl counters > "$cdir/counters.txt" 2>&1 || fails+=("iommu-emu-ctl counters failed")
        local nx; nx=$(awk '$1 == "translations" {print $2}' "$cdir/counters.txt")
        [ "${nx:-0}" -gt 16384 ] || fails+=("only ${nx:-0} translations reached the daemon (a 64 MiB read alone needs 16384 pages)")
        grep -q 'iommu-emu: arm-smmuv3 served by\|iommu-emu: virtio-iommu served by' "$c" || fails+=("QEMU did not attach to the daemon")
        if [ "$name" = "${name%-fault}" ]; then
            ! grep -Eq 'event 0x[0-9a-f]+ received|fault from EP' "$c" || fails+=("unexpected fault events in the guest")
            grep -Eq '^faults +0$' "$cdir/counters.txt" || fails+=("the daemon recorded faults: $(grep faults "$cdir/counters.txt")")
        else
            if [ "$iommu" = smmuv3 ]; then
                grep -Eq 'event 0x10 received' "$c" || fails+=("the guest did not see F_TRANSLATION (0x10)")
            else
                grep -Eq 'virtio_iommu virtio[0-9]+: .*fault from EP 16' "$c" || fails+=("the guest did not see the virtio-iommu fault event")
            fi
            grep -q '^T: alive-after' "$c" || fails+=("the guest did not survive the fault")
            grep -q 'F_TRANSLATION\|VIRTIO_IOMMU_FAULT' "$cdir/inject.log" || fails+=("the control API did not report the fault: $(cat "$cdir/inject.log")")
            grep -Eq '^faults +[1-9]' "$cdir/counters.txt" || fails+=("the daemon counted no fault")
        fi
        stop_daemon
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$(t host-boot-ms)" "$(t disk-read-seconds)" "${#fails[@]}" >> "$results"
    if [ ${#fails[@]} -eq 0 ]; then
        log "$name: PASS (boot $(t host-boot-ms) ms, 64 MiB read $(t disk-read-seconds) s)"
    else
        log "$name: FAIL: ${fails[*]} (console: $c)"
        failed+=("$name")
    fi
}

while read -r -u 3 name kernel iommu frontend profile; do
    [ -n "$name" ] || continue
    if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
    run_case "$name" "$kernel" "$iommu" "$frontend" "$([ "$profile" = - ] && echo "" || echo "$profile")"
done 3<<<"$all_cases"

if [ -n "$bench" ]; then
    # Two more runs of each compared pair, so that the table shows medians of three.
    for _ in 1 2; do
        while read -r -u 3 name kernel iommu frontend profile; do
            case $name in builtin-*|*-6.1-default|*-6.12-default|viommu-6.12) ;; *) continue ;; esac
            if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
            run_case "$name" "$kernel" "$iommu" "$frontend" "$([ "$profile" = - ] && echo "" || echo "$profile")"
        done 3<<<"$all_cases"
    done
    IOMMU_EMU_QEMU_PATH=$qemu "$here/bench-table.sh" "$results" "$root/BENCHMARKS.md"
fi
if [ ${#failed[@]} -gt 0 ]; then die "failed: ${failed[*]}"; fi
log "all cases passed"
