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
smmuv3-6.12-reboot   6.12 smmuv3 ours    default
smmuv3-6.12-numa     6.12 smmuv3 ours    default
smmuv3-6.12-lazy     6.12 smmuv3 ours    default
viommu-6.12-lazy     6.12 virtio ours    default
viommu-6.12-reboot   6.12 virtio ours    default
smmuv3-6.12-record   6.12 smmuv3 ours    default+strict
builtin-smmuv3-7     7    smmuv3 builtin -
smmuv3-7-default     7    smmuv3 ours    default
smmuv3-7-max         7    smmuv3 ours    max
builtin-smmuv3-7-16k 7-16k smmuv3 builtin -
smmuv3-7-16k         7-16k smmuv3 ours   default
builtin-viommu-7     7    virtio builtin -
viommu-7             7    virtio ours    default
builtin-smmuv3-7-io  7    smmuv3 builtin -
smmuv3-7-io          7    smmuv3 ours    default
smmuv3-7-strict-io   7    smmuv3 ours    default+strict
smmuv3-7-migrate     7    smmuv3 ours    default+strict
smmuv3-7-max-migrate 7    smmuv3 ours    max+strict
smmuv3-7-fast-migrate 7   smmuv3 ours    default
smmuv3-7-mismatch-migrate 7 smmuv3 ours  default
viommu-7-migrate     7    virtio ours    default
smmuv3-7-restart     7    smmuv3 ours    default+strict
smmuv3-7-gap-reboot  7    smmuv3 ours    default+strict
smmuv3-7-max-restart 7    smmuv3 ours    max+strict
smmuv3-7-fast-restart 7   smmuv3 ours    default
viommu-7-restart     7    virtio ours    default
builtin-viommu-7-io  7    virtio builtin -
viommu-7-io          7    virtio ours    default
builtin-smmuv3-7-passthrough 7 smmuv3 builtin -
smmuv3-7-passthrough 7    smmuv3 ours    default
builtin-viommu-7-passthrough 7 virtio builtin -
viommu-7-passthrough 7    virtio ours    default
builtin-smmuv3-7-lazy 7   smmuv3 builtin -
smmuv3-7-lazy        7    smmuv3 ours    default
builtin-smmuv3-7-2smmu 7  smmuv3 builtin -
smmuv3-7-2smmu       7    smmuv3 ours    default
builtin-nest-7       nest smmuv3 builtin -
nest-7-nesting-host  nest smmuv3 ours    nesting-host
nest-7-default       nest smmuv3 ours    default
nest-7-s1-only       nest smmuv3 ours    s1-only
"
# The floor for benchmarks (issue 12): the same guests with no IOMMU at all. Run only when named
# (guest-tests/boot/run.sh none-7 builtin-smmuv3-7 smmuv3-7-default ...), not in the default matrix.
floor_cases="
none-7               7    none   none    -
none-7-io            7    none   none    -
none-6.12            6.12 none   none    -
"
bench=
want=()
for a in "$@"; do
    case "$a" in
        --bench) bench=1 ;;
        --list) awk 'NF {print $1}' <<<"$all_cases$floor_cases"; exit 0 ;;
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

# The -io cases: a 16 MiB NVMe disk and a 4 MiB file served by QEMU's TFTP, with their checksums;
# the four readers' parts of the 64 MiB disk.
nvme_disk=$work/nvme.img
[ -f "$nvme_disk" ] || head -c $((16 << 20)) /dev/urandom > "$nvme_disk"
nvme_md5=$(md5sum "$nvme_disk" | cut -d' ' -f1)
tftp_dir=$work/tftp; mkdir -p "$tftp_dir"
[ -f "$tftp_dir/blob" ] || head -c $((4 << 20)) /dev/urandom > "$tftp_dir/blob"
blob_md5=$(md5sum "$tftp_dir/blob" | cut -d' ' -f1)
part_md5=(); for i in 0 1 2 3; do part_md5+=("$(dd if="$disk" bs=1M skip=$((i * 16)) count=16 2>/dev/null | md5sum | cut -d' ' -f1)"); done

# The -2smmu cases need QEMU 10.2 (user-creatable arm-smmuv3) and UEFI firmware with ACPI (QEMU
# describes an SMMU on another root bus than pcie.0 only in the IORT): both fetched on first use.
qemu102=
get_qemu102() {
    [ -n "$qemu102" ] || qemu102=${IOMMU_EMU_QEMU_10_2:-$("$root/vhost-bridge/qemu/build-qemu.sh" 10.2)} \
        || die "building QEMU 10.2 failed"
}
efi_fd=
get_efi() { # Debian's AAVMF build of edk2 for QEMU's virt board (architecture-independent package)
    local d=${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu/guest/efi
    if [ ! -f "$d/QEMU_EFI.fd" ]; then
        rm -rf "$d"; mkdir -p "$d/dl"
        (cd "$d/dl" && apt-get download -qq qemu-efi-aarch64/trixie >&2) || die "apt-get download qemu-efi-aarch64 failed"
        dpkg-deb -x "$d"/dl/*.deb "$d/root" && cp "$d/root/usr/share/qemu-efi-aarch64/QEMU_EFI.fd" "$d/" \
            || die "no QEMU_EFI.fd in qemu-efi-aarch64"
    fi
    efi_fd=$d/QEMU_EFI.fd
}

declare -A assets
get_assets() {
    [ -n "${assets[$1]:-}" ] && return
    if [ "$1" = nest ]; then
        # The nesting-host guest (guest-tests/nesting-host): a Linux 7.x built with IOMMUFD from
        # Debian's linux-source (cached by a hash, ~15 min cold on 2 cores) and iommufd-nest.
        assets[$1]="$("$root/guest-tests/nesting-host/nest-assets.sh") nest" || die "nesting-host assets"
    else
        assets[$1]=$("$here/guest-assets.sh" "$1") || die "guest assets for $1"
    fi
}

daemon_pid=
events_pid=
stop_events() {
    if [ -n "$events_pid" ]; then kill "$events_pid" 2>/dev/null || true; wait "$events_pid" 2>/dev/null || true; events_pid=; fi
}
stop_daemon() {
    stop_events
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=; fi
    if [ -n "${daemon2_pid:-}" ]; then kill "$daemon2_pid" 2>/dev/null || true; wait "$daemon2_pid" 2>/dev/null || true; daemon2_pid=; fi
}
trap stop_daemon EXIT

start_daemon() { # log iommu profile [n]: the daemon on $cdir's sockets (vmm$n.sock, ctl$n.sock), in the background
    # ($record_to: the -record case's recording, docs/recording.md)
    "$root/bin/iommu-emu" --socket "$cdir/vmm${4:-}.sock" --control "$cdir/ctl${4:-}.sock" \
        --model "$([ "$2" = smmuv3 ] && echo smmuv3 || echo virtio-iommu)" --profile "$3" \
        ${record_to:+--record "$record_to"} </dev/null > "$1" 2>&1 &
}

ctl() { java -cp "$root/tools/target/benchmarks.jar" dev.iommuemu.tools.cli.IommuEmuCtl --control "${ctl_sock:-$cdir/ctl.sock}" "$@"; }

# The fault cases' DMA: the guest's /init has QEMU's edu test device (docs/specs/edu.rst) read this
# IOVA, which it never maps (below the edu's default 28-bit dma_mask, so the device does not clamp it).
fault_iova=0xdead000

results=$work/results.tsv
: > "$results"
failed=()
run_case() { # name kernel iommu frontend profile
    local name=$1 kernel=$2 iommu=$3 frontend=$4 profile=$5
    cdir=$work/$name; rm -rf "$cdir"; mkdir -p "$cdir"; ctl_sock=
    record_to=; [ "$name" = "${name%-record}" ] || record_to=$cdir/boot-{session}.iommurec
    get_assets "$kernel"
    read -r vmlinuz initrd abi <<<"${assets[$kernel]}"
    if [ "$kernel" = nest ]; then run_nest_case "$name" "$frontend" "$profile" "$vmlinuz" "$initrd"; return; fi
    # Strict invalidation (every unmap invalidated at once) but for the -lazy cases, which boot with
    # Linux's deferred flush queue (iommu.strict=0): invalidations batched, entries stale meanwhile.
    local strict=1; [ "$name" = "${name%-lazy}" ] || strict=0
    local append="console=ttyAMA0 rdinit=/init panic=-1 iommu.strict=$strict"
    # -io: 4 vCPUs with 4 concurrent readers of the virtio disk, an NVMe disk, and an e1000e NIC
    # fetching a file from QEMU's user network (TFTP), all behind the IOMMU.
    local io=; [ "$name" = "${name%-io}" ] || io=1
    local smp=1 io_args=()
    if [ -n "$io" ]; then
        smp=4; append="$append iommuemu.readers=4 iommuemu.nvme iommuemu.net"
        io_args=(-drive "if=none,id=nv0,file=$nvme_disk,format=raw,readonly=on" -device nvme,serial=iommuemu0,drive=nv0
                 -netdev "user,id=n0,tftp=$tftp_dir" -device e1000e,netdev=n0,romfile=)  # no option ROM: Debian's +ds source has none
    fi
    [ "$name" = "${name%-passthrough}" ] || append="$append iommu.passthrough=1"
    # -2smmu: two user-created arm-smmuv3 (QEMU 10.2), one on pcie.0 and one on a pxb-pcie root bus
    # (bus 0x80) with a root port and a second virtio disk behind it; UEFI with ACPI (IORT).
    local two=; [ "$name" = "${name%-2smmu}" ] || two=1
    local case_qemu=$qemu two_args=() bus0=
    if [ -n "$two" ]; then
        get_qemu102; get_efi; case_qemu=$qemu102; bus0=",bus=pcie.0"
        append="$append acpi=force iommuemu.disk2"
        two_args=(-bios "$efi_fd" -device pxb-pcie,id=pcie.1,bus_nr=0x80,bus=pcie.0
                  -device pcie-root-port,id=rp1,bus=pcie.1,chassis=1,slot=1
                  -drive "if=none,id=d2,file=$disk,format=raw,readonly=on"
                  -device virtio-blk-pci,drive=d2,bus=rp1,iommu_platform=on,disable-legacy=on)
        if [ "$frontend" = ours ]; then
            two_args+=(-chardev "socket,id=ie1,path=$cdir/vmm.sock"
                       -device arm-smmuv3,primary-bus=pcie.0,id=smmuv3.0,iommu-emu=ie0
                       -device arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1,iommu-emu=ie1)
        else
            two_args+=(-device arm-smmuv3,primary-bus=pcie.0,id=smmuv3.0
                       -device arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1)
        fi
    fi
    [ "$name" = "${name%-fault}" ] || append="$append iommuemu.edu_dma=$fault_iova"
    local reboot=; [ "$name" = "${name%-reboot}" ] || reboot=1
    # -gap-reboot: the machine resets while no daemon runs; the next daemon takes over from its reset state
    local gap_reboot=; [ "$name" = "${name%-gap-reboot}" ] || { gap_reboot=1; append="$append iommuemu.gap_reboot"; }
    # -migrate: the VM moves to a second QEMU with a daemon of its own while it writes and reads its
    # scratch disk (docs/qemu.md "Migration"); everything after "T: migrate-now" runs there.
    local migrate=; [ "$name" = "${name%-migrate}" ] || { migrate=1; append="$append iommuemu.migrate"; head -c $((8 << 20)) /dev/zero > "$cdir/scratch.img"; }
    # -restart: the daemon is SIGKILLed while the guest writes and reads its scratch disk, and a new one
    # takes over the IOMMU's state (docs/qemu.md "When the daemon goes away"). Both disks are served by
    # an iothread: DMA off the BQL waits for the new daemon. Under the BQL it aborts, so no virtio-rng
    # (its DMA runs in the main loop, and Linux's hwrng thread reads it all the time: an abort in the
    # gap would break its queue).
    local restart= blk_io=
    if [ "$name" != "${name%-restart}" ]; then
        restart=1; blk_io=,iothread=io0; append="$append iommuemu.restart"; head -c $((8 << 20)) /dev/zero > "$cdir/scratch.img"
    fi
    [ -z "$reboot" ] || { append="$append iommuemu.reboot"; head -c $((1 << 20)) /dev/zero > "$cdir/scratch.img"; }
    local machine=virt machine_type=virt ram=",memory-backend=mem"
    local mem=(-object memory-backend-memfd,id=mem,size=1G,share=on)
    if [ "$name" != "${name%-numa}" ]; then
        # Two NUMA nodes, each its own memfd (two RAM regions for the daemon), the CPU on the second
        # so that the guest's allocations (page tables, queues, DMA buffers) land there.
        ram=; mem=(-object memory-backend-memfd,id=m0,size=512M,share=on -object memory-backend-memfd,id=m1,size=512M,share=on
            -numa node,nodeid=0,memdev=m0 -numa node,nodeid=1,memdev=m1,cpus=0)
    fi
    local args=(-cpu max,pauth-impdef=on -smp "$smp" -m 1G -nographic -nic none $([ -n "$reboot" ] || echo -no-reboot)
        "${mem[@]}"
        -kernel "$vmlinuz" -initrd "$initrd" -append "$append"
        $([ "$iommu" = virtio ] && echo "-device virtio-iommu-pci$([ "$frontend" = ours ] && echo ,iommu-emu=ie0)")
        -drive "if=none,id=d0,file=$disk,format=raw,readonly=on"
        $([ -z "$restart" ] || echo "-object iothread,id=io0")
        -device "virtio-blk-pci,drive=d0,iommu_platform=on,disable-legacy=on$bus0$blk_io"
        $([ -n "$restart" ] || echo "-device virtio-rng-pci,iommu_platform=on,disable-legacy=on$bus0")
        $([ "$name" = "${name%-fault}" ] || echo "-device edu")
        "${io_args[@]}" "${two_args[@]}"
        $([ -z "$reboot$migrate$restart" ] || echo "-drive if=none,id=d1,file=$cdir/scratch.img,format=raw -device virtio-blk-pci,drive=d1,iommu_platform=on,disable-legacy=on$blk_io"))

    if [ "$frontend" = ours ]; then
        start_daemon "$cdir/daemon.log" "$iommu" "$profile"
        daemon_pid=$!
        for _ in $(seq 300); do [ -S "$cdir/vmm.sock" ] && [ -S "$cdir/ctl.sock" ] && break; sleep 0.1; done
        [ -S "$cdir/vmm.sock" ] || { cat "$cdir/daemon.log" >&2; die "$name: the daemon did not start"; }
        # The daemon is a chardev; the device names it (virtio-iommu-pci's iommu-emu=ie0 above).
        # reconnect-ms: QEMU reconnects to a daemon that went away (the restart cases).
        args+=(-chardev "socket,id=ie0,path=$cdir/vmm.sock,reconnect-ms=100")
        [ "$iommu" != smmuv3 ] || [ -n "$two" ] || args+=(-global arm-smmuv3.iommu-emu=ie0)
        # QEMU's arm-smmuv3 "stage" reaches the daemon and selects what its profile advertises
        # (IOMMU_SET_PROPERTIES). The virt board of QEMU 10.0 makes its SMMU "nested" (both stages),
        # which a one-stage profile refuses; its 9.1 machine type keeps QEMU's default stage "1",
        # and "stage=2" asks for stage 2 alone.
        case $profile in
            s1-only) machine_type=virt-9.1 ;;
            s2-only) machine_type=virt-9.1; args+=(-global arm-smmuv3.stage=2) ;;
        esac
    fi
    if [ "$frontend" = ours ] && [ "$name" != "${name%-fault}" ]; then
        # The control API's event stream has no history: follow it from before QEMU connects.
        java -cp "$root/tools/target/benchmarks.jar" dev.iommuemu.tools.cli.IommuEmuCtl --control "$cdir/ctl.sock" \
            events --follow > "$cdir/events.log" 2>&1 &
        events_pid=$!
        # Start the guest only once the daemon confirmed the subscription.
        for _ in $(seq 300); do grep -q '^(subscribed' "$cdir/events.log" 2>/dev/null && break; sleep 0.1; done
        grep -q '^(subscribed' "$cdir/events.log" || die "$name: the control API's event stream did not start: $(cat "$cdir/events.log")"
    fi
    local probe_pid=
    if [ "$frontend" = ours ] && [ "$name" != "${name%-numa}" ]; then
        # While the guest runs (its session is open): SMMU_STRTAB_BASE.ADDR as the control API decodes
        # it (the model's one declaration of the field), asked from QEMU's start until the driver has
        # programmed it (or the guest is done).
        ( for _ in $(seq 300); do
              out=$(ctl registers 2>&1 | awk '/^SMMU_STRTAB_BASE /{f=1; next} f && $1 == "ADDR" {print $3; exit} /^[A-Z]/{f=0}' || true)
              case $out in 0x0|"") ;; 0x*) echo "$out" > "$cdir/strtab.txt"; break ;; esac
              grep -q '^T: DONE' "$cdir/console.log" 2>/dev/null && { echo "${out:-none}" > "$cdir/strtab.txt"; break; }
              sleep 0.2
          done ) &
        probe_pid=$!
    fi
    case $iommu in
        smmuv3) machine="$machine_type,iommu=smmuv3$ram"
                [ -z "$two" ] || machine="$machine_type,gic-version=3$ram" ;;
        none)   machine="$machine_type$ram" ;;  # no IOMMU: the floor
        virtio) machine="$machine_type$ram" ;;  # virtio-iommu-pci comes first (above): the IOMMU
                                                # must exist when the devices it serves are realized
    esac
    local restart_pid=
    if [ -n "$restart" ]; then
        # When the guest says so (its disk passes running): SIGKILL the daemon, start a new one on the
        # same sockets; QEMU's chardev reconnects to it and hands it the state the old one journaled.
        ( for _ in $(seq 1200); do grep -q '^T: restart-now' "$cdir/console.log" 2>/dev/null && break; sleep 0.1; done
          grep -q '^T: restart-now' "$cdir/console.log" || exit 0
          sleep 0.5  # a few passes in
          local killed; killed=$(date +%s%N)
          kill -9 "$daemon_pid" 2>/dev/null || true
          for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
          rm -f "$cdir/vmm.sock" "$cdir/ctl.sock"
          start_daemon "$cdir/daemon2.log" "$iommu" "$profile"; echo $! > "$cdir/daemon2.pid"
          echo "T: host-restarted-daemon" >> "$cdir/restart.log"
          # the gap the guest's DMA saw: from the kill until QEMU said the new daemon took over
          for _ in $(seq 600); do grep -q 'took over the IOMMU' "$cdir/console.log" && break; sleep 0.05; done
          echo "T: host-gap-ms $(( ($(date +%s%N) - killed) / 1000000 ))" >> "$cdir/restart.log" ) &
        restart_pid=$!
    fi
    if [ -n "$gap_reboot" ]; then
        # On the guest's word: SIGKILL the daemon and start the next one on other sockets at once, but
        # move them into place (QEMU reconnects within reconnect-ms) only once the second boot began,
        # i.e. after the machine's reset: deterministic order, and the new daemon is up long before
        # the second kernel probes the SMMU.
        ( for _ in $(seq 1200); do grep -q '^T: kill-daemon-now' "$cdir/console.log" 2>/dev/null && break; sleep 0.1; done
          grep -q '^T: kill-daemon-now' "$cdir/console.log" || exit 0
          kill -9 "$daemon_pid" 2>/dev/null || true
          for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
          rm -f "$cdir/vmm.sock" "$cdir/ctl.sock"
          start_daemon "$cdir/daemon2.log" "$iommu" "$profile" -next; echo $! > "$cdir/daemon2.pid"
          for _ in $(seq 600); do [ "$(grep -c 'Booting Linux' "$cdir/console.log")" -ge 2 ] && break; sleep 0.05; done
          for _ in $(seq 300); do [ -S "$cdir/vmm-next.sock" ] && [ -S "$cdir/ctl-next.sock" ] && break; sleep 0.05; done
          mv "$cdir/vmm-next.sock" "$cdir/vmm.sock"; mv "$cdir/ctl-next.sock" "$cdir/ctl.sock"
          echo "T: host-restarted-daemon-after-reset" >> "$cdir/restart.log" ) &
        restart_pid=$!
    fi
    local start; start=$(date +%s%N)
    local dst_pid= mig_pid=
    if [ -n "$migrate" ]; then
        # The destination: a second daemon (its own session) and a second QEMU waiting for the
        # migration stream; the source gets a QMP socket, over which qmp.py migrates and then quits it.
        # -mismatch-migrate: the destination's daemon has another profile, which must refuse the
        # state (the migration fails with its sentence, the source runs on and finishes).
        local dst_profile=$profile; [ "$name" = "${name%-mismatch-migrate}" ] || dst_profile=max
        start_daemon "$cdir/daemon2.log" "$iommu" "$dst_profile" 2
        daemon2_pid=$!
        for _ in $(seq 300); do [ -S "$cdir/vmm2.sock" ] && [ -S "$cdir/ctl2.sock" ] && break; sleep 0.1; done
        [ -S "$cdir/vmm2.sock" ] || { cat "$cdir/daemon2.log" >&2; die "$name: the destination daemon did not start"; }
        # return-path: the source learns whether the destination loaded the state, and runs on if
        # it did not (QEMU's migration return path, as management stacks enable it)
        args+=(-global migration.x-return-path=on)
        local dst_args=("${args[@]/vmm.sock/vmm2.sock}")
        echo "$case_qemu -M $machine ${dst_args[*]} -incoming unix:$cdir/mig.sock" > "$cdir/cmdline-dst"
        ( timeout "$timeout_s" "$case_qemu" -M "$machine" "${dst_args[@]}" -incoming "unix:$cdir/mig.sock" </dev/null 2>&1 \
            | while IFS= read -r line; do
                line=${line%$'\r'}; printf '%s\n' "$line"
                case $line in *"T: DONE"*) echo "T: host-boot-ms $(( ($(date +%s%N) - start) / 1000000 ))" ;; esac
            done > "$cdir/console-dst.log" ) &
        dst_pid=$!
        for _ in $(seq 300); do [ -S "$cdir/mig.sock" ] && break; sleep 0.1; done
        args+=(-qmp "unix:$cdir/qmp.sock,server=on,wait=off")
        # the source's dirty bitmap syncs take the pages its daemon wrote (protocol.md §4.11)
        args+=(-trace iommu_emu_dirty_sync)
        ( for _ in $(seq 1200); do grep -q '^T: migrate-now' "$cdir/console.log" 2>/dev/null && break; sleep 0.1; done
          python3 "$here/qmp.py" "$cdir/qmp.sock" migrate "unix:$cdir/mig.sock" > "$cdir/migrate.log" 2>&1 \
              && python3 "$here/qmp.py" "$cdir/qmp.sock" quit >> "$cdir/migrate.log" 2>&1 ) &
        mig_pid=$!
        # the checks ask the daemon the guest finished on
        [ "$dst_profile" != "$profile" ] || ctl_sock=$cdir/ctl2.sock
    fi
    log "$name: linux $abi, $iommu ($frontend${profile:+ $profile})"
    echo "$case_qemu -M $machine ${args[*]}" > "$cdir/cmdline"
    set +e
    timeout "$timeout_s" "$case_qemu" -M "$machine" "${args[@]}" </dev/null 2>&1 | while IFS= read -r line; do
        line=${line%$'\r'}; printf '%s\n' "$line"
        case $line in *"T: DONE"*) echo "T: host-boot-ms $(( ($(date +%s%N) - start) / 1000000 ))" ;; esac
    done > "$cdir/console.log"
    set -e
    if [ -n "$migrate" ]; then
        wait "$mig_pid" || true
        # no migration: the destination would wait for it until the timeout
        grep -q '^migrate: completed' "$cdir/migrate.log" 2>/dev/null || pkill -f "unix:$cdir/mig.sock" || true
        wait "$dst_pid" || true
        # one console for the checks: the source's part, then the destination's
        cat "$cdir/console-dst.log" >> "$cdir/console.log"
    fi
    [ -z "$probe_pid" ] || wait "$probe_pid" || true
    if [ -n "$restart_pid" ]; then
        wait "$restart_pid" || true
        [ ! -f "$cdir/daemon2.pid" ] || daemon_pid=$(cat "$cdir/daemon2.pid")
    fi
    check_case "$name" "$iommu" "$frontend" "$profile"
}

# The nesting-host cases: a Linux 7.x guest with IOMMUFD uses our SMMUv3 (or QEMU's) as a nesting
# host through the real uAPI: vIOMMU, vDEVICE, nested HWPT, DMA through both stages, a stage 1 fault
# on the vEVENTQ, invalidation (guest-tests/nesting-host/README.md, docs/nesting.md §7).
run_nest_case() { # name frontend profile kernel initrd
    local name=$1 frontend=$2 profile=$3 kernel=$4 initrd=$5 machine=virt nest=
    # GET_HW_INFO must report the profile's SMMU_IDR0-5 (Smmuv3Profile; stage "nested" on the board)
    case $profile in
        nesting-host) nest=expect-idr:0xd4c101b,0x2730410,0x0,0x1500,0x0,0x74 ;;
        default) nest=expect-idr:0xd44101b,0x2730010,0x0,0x400,0x0,0x74 ;;
        s1-only) nest=no-nesting; machine=virt-9.1 ;;  # QEMU's default stage "1" (see above)
    esac
    local args=(-cpu max,pauth-impdef=on -smp 1 -m 1G -nographic -nic none -no-reboot
        -object memory-backend-memfd,id=mem,size=1G,share=on
        -kernel "$kernel" -initrd "$initrd" -append "console=ttyAMA0 rdinit=/init panic=-1 iommuemu.nest=$nest"
        -device edu)
    if [ "$frontend" = ours ]; then
        start_daemon "$cdir/daemon.log" smmuv3 "$profile"
        daemon_pid=$!
        for _ in $(seq 300); do [ -S "$cdir/vmm.sock" ] && break; sleep 0.1; done
        [ -S "$cdir/vmm.sock" ] || { cat "$cdir/daemon.log" >&2; die "$name: the daemon did not start"; }
        args+=(-chardev "socket,id=ie0,path=$cdir/vmm.sock" -global arm-smmuv3.iommu-emu=ie0)
    fi
    # gic-version=3: VFIO wants isolated MSIs (the ITS)
    machine="$machine,gic-version=3,iommu=smmuv3,memory-backend=mem"
    log "$name: nesting host, smmuv3 ($frontend${profile:+ $profile})"
    echo "$qemu -M $machine ${args[*]}" > "$cdir/cmdline"
    set +e
    timeout "$timeout_s" "$qemu" -M "$machine" "${args[@]}" </dev/null > "$cdir/console.log" 2>&1
    set -e
    local c=$cdir/console.log fails=()
    grep -q '^T: DONE' "$c" || fails+=("no DONE marker")
    grep -q '^T: edu .* group=[0-9]' "$c" || fails+=("the edu is in no IOMMU group")
    grep -q '^NEST step=bind ok' "$c" || fails+=("VFIO_DEVICE_BIND_IOMMUFD failed: $(grep -m1 '^NEST' "$c")")
    case $name in
        nest-7-nesting-host)
            # Every step of iommufd-nest, each a fact about our SMMUv3 (iommufd-nest.c)
            local st
            for st in hw_info ioas_map nest_parent viommu vdevice veventq nested_hwpt attach edu dma \
                      fault_event tlbi_nh_va cfgi_cd; do
                grep -q "^NEST step=$st ok" "$c" || fails+=("step $st: '$(grep -m1 "^NEST step=$st " "$c" || echo missing)'")
            done
            grep -q '^NEST result=ok' "$c" || fails+=("iommufd-nest did not complete")
            # The fault arrived with the virtual StreamID 0x42 (F_TRANSLATION 0x10, IHI 0070 §7.3.10)
            grep -q '^NEST step=fault_event ok .*evt=0x4200000010,' "$c" || fails+=("no F_TRANSLATION with vSID 0x42 on the vEVENTQ")
            ;;
        nest-7-default|builtin-nest-7)
            # Stage 1 and 2 but no S2FWB (SMMU_IDR3.FWB): Linux gives a nest parent, refuses a vIOMMU
            grep -q '^NEST step=nest_parent ok' "$c" || fails+=("no nest parent: '$(grep -m1 '^NEST step=nest_parent' "$c")'")
            grep -q '^NEST step=viommu FAIL errno=EOPNOTSUPP' "$c" || fails+=("the vIOMMU was not refused with EOPNOTSUPP: '$(grep -m1 '^NEST step=viommu' "$c")'")
            ;;
        nest-7-s1-only)
            # No stage 2: no nest parent (EOPNOTSUPP), through the real uAPI
            grep -q '^NEST step=nest_parent_refused ok' "$c" || fails+=("the nest parent was not refused: '$(grep -m1 '^NEST step=nest_parent' "$c")'")
            grep -q '^NEST result=ok' "$c" || fails+=("iommufd-nest did not complete")
            ;;
    esac
    if [ "$frontend" = ours ]; then
        grep -q 'iommu-emu: arm-smmuv3 served through chardev' "$c" || fails+=("QEMU did not attach to the daemon")
        stop_daemon
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "" "" "${#fails[@]}" >> "$results"
    if [ ${#fails[@]} -eq 0 ]; then
        log "$name: PASS ($(grep -c '^NEST step=.* ok' "$c") steps ok)"
    else
        log "$name: FAIL: ${fails[*]} (console: $c)"
        failed+=("$name")
    fi
}

check_case() {
    local name=$1 iommu=$2 frontend=$3 profile=${4:--} c=$cdir/console.log fails=()
    t() { sed -n "s/^T: $1 //p" "$c" | head -n 1; }
    grep -q '^T: DONE' "$c" || fails+=("no DONE marker")
    if [ "$iommu" = smmuv3 ]; then
        grep -Eq 'arm-smmu-v3 [^ ]+: (ias [0-9]+-bit, )?oas [0-9]+-bit' "$c" || fails+=("no arm-smmu-v3 probe line")
    elif [ "$iommu" = virtio ]; then
        grep -Eq 'virtio_iommu virtio[0-9]+: page mask: 0x' "$c" || fails+=("no virtio_iommu page-mask line")
    else
        # no IOMMU: no device in an IOMMU group
        ! grep -q '^T: pci .*group=[0-9]' "$c" || fails+=("a device in an IOMMU group on a machine without an IOMMU")
    fi
    if [ "$name" != "${name%-reboot}" ]; then
        # One boot marked the scratch disk and rebooted (QEMU system reset); the second found the
        # mark and made the checks. The IOMMU must have come back in its reset state: Linux's SMMUv3
        # driver warns "SMMU currently enabled! Resetting..." when it finds SMMU_CR0.SMMUEN set.
        grep -q '^T: first-boot marked iommuemu-booted1, rebooting' "$c" || fails+=("no first boot that marked the scratch disk")
        grep -q '^T: second-boot' "$c" || fails+=("no second boot")
        local probes; probes=$(grep -v '^T: ' "$c" | grep -Ec 'arm-smmu-v3 [^ ]+: (ias [0-9]+-bit, )?oas [0-9]+-bit|virtio_iommu virtio[0-9]+: page mask: 0x' || true)
        [ "$probes" = 2 ] || fails+=("the IOMMU driver probed $probes times, want 2 (one per boot)")
        ! grep -q 'SMMU currently enabled' "$c" || fails+=("the second boot found the SMMU enabled: the system reset did not reset the daemon's SMMUv3")
    fi
    local restart_case=; [ "$name" = "${name%-restart}" ] || restart_case=1
    if [ -n "$restart_case" ]; then
        # The daemon was SIGKILLed mid-I/O and a new one started: QEMU said so, the new daemon loaded
        # the state the old one journaled (docs/protocol.md §4.10), and every write/read pass of the
        # scratch disk, before, across and after the gap, read back what it wrote.
        [ -f "$cdir/restart.log" ] || fails+=("the runner never restarted the daemon")
        grep -q "iommu-emu: lost the daemon behind chardev 'ie0' .*waits for a new daemon" "$c" || fails+=("QEMU did not report the lost daemon: $(grep -m1 'lost the daemon' "$c")")
        grep -q "iommu-emu: a new daemon behind chardev 'ie0' took over the IOMMU's state" "$c" \
            || fails+=("the new daemon did not take over: $(grep -m2 'iommu-emu:' "$c" | tail -n 1)")
        grep -q 'device state loaded' "$cdir/daemon2.log" || fails+=("the new daemon loaded no device state")
        grep -q '^T: restart-rw ok=40 bad=0' "$c" || fails+=("scratch disk passes across the restart: '$(sed -n 's/^T: restart-rw //p' "$c")', want ok=40 bad=0")
        log "$name: daemon killed mid-I/O, $(grep -o 'took over the .*' "$c" | head -n 1); gap $(sed -n 's/^T: host-gap-ms //p' "$cdir/restart.log" 2>/dev/null) ms; guest CMD_SYNC timeouts: $(grep -c 'CMD_SYNC timeout' "$c" || true)"
    fi
    if [ "$name" != "${name%-gap-reboot}" ]; then
        # The daemon was killed, the machine reset with none running, and the next daemon took over
        # from its own reset state (no state loaded) with the writes since the reset; the second boot
        # made every check against it (the reboot checks: the driver found the SMMU in reset state).
        [ -f "$cdir/restart.log" ] || fails+=("the runner never restarted the daemon")
        grep -q "iommu-emu: a new daemon behind chardev 'ie0' took over the IOMMU's reset state" "$c" \
            || fails+=("the new daemon did not take over the reset state: $(grep -m3 'iommu-emu:' "$c" | tail -n 1)")
        ! grep -q 'device state loaded' "$cdir/daemon2.log" || fails+=("the new daemon loaded the state from before the reset")
        log "$name: $(grep -o 'took over the .*' "$c" | head -n 1)"
    fi
    if [ "$name" != "${name%-numa}" ]; then
        # Two nodes seen by the guest; guest RAM reached the daemon as two regions.
        [ "$(t numa-nodes)" = 2 ] || fails+=("the guest saw '$(t numa-nodes)' NUMA nodes, want 2")
    fi
    local nvirtio; nvirtio=$(grep -c '^T: pci .*vendor=0x1af4' "$c" || true)
    [ "$nvirtio" -ge 2 ] || fails+=("expected >= 2 virtio PCI devices, saw $nvirtio")
    # every virtio device but the virtio-iommu itself (0x1057, virtio 1.x §4.1.2.1: 0x1040 + 23)
    [ "$iommu" = none ] || ! grep -v 'device=0x1057' "$c" | grep -q '^T: pci .*vendor=0x1af4.*group=none' || fails+=("a virtio device without an IOMMU group")
    [ "$(t disk-md5)" = "$disk_md5" ] || fails+=("disk checksum $(t disk-md5) != $disk_md5")
    [ -n "$restart_case" ] || [ "$(t hwrng-bytes)" = 64 ] || fails+=("/dev/hwrng gave '$(t hwrng-bytes)' bytes")
    if [ "$name" != "${name%-io}" ]; then
        local i got
        for i in 0 1 2 3; do
            got=$(sed -n "s/^T: reader-md5 $i //p" "$c" | head -n 1)
            [ "$got" = "${part_md5[$i]}" ] || fails+=("reader $i (4 vCPUs at once) read '$got', want ${part_md5[$i]}")
        done
        [ "$(t nvme-md5)" = "$nvme_md5" ] || fails+=("NVMe checksum '$(t nvme-md5)' != $nvme_md5")
        [ "$(t net-md5)" = "$blob_md5" ] || fails+=("e1000e TFTP transfer checksum '$(t net-md5)' != $blob_md5")
        # the guest's own count of its IOMMU map/unmap calls in the readers (init.sh, the iommu:map
        # and iommu:unmap tracepoints): each 1 MiB O_DIRECT read maps and unmaps its buffer, so at
        # least 2 x 64 with an IOMMU; none without one
        local calls; calls=$(t readers-iommu-calls)
        case $calls in ''|*[!0-9]*) fails+=("the guest could not count its IOMMU calls in the readers (got '$calls': no tracefs, no hist triggers in its kernel, or the hist dropped entries)") ;;
            *) if [ "$iommu" = none ]; then [ "$calls" = 0 ] || fails+=("$calls IOMMU calls in the readers without an IOMMU")
               else [ "$calls" -ge 128 ] || fails+=("only $calls IOMMU map/unmap calls in the readers, want >= 128"); fi ;;
        esac
        if [ "$iommu" != none ]; then
            grep -q '^T: pci .*vendor=0x8086 device=0x10d3 group=[0-9]' "$c" || fails+=("the e1000e is in no IOMMU group")
            grep -q '^T: pci .*vendor=0x1b36 device=0x0010 group=[0-9]' "$c" || fails+=("the NVMe controller is in no IOMMU group")
        fi
    fi
    if [ "$name" != "${name%-passthrough}" ]; then
        grep -q 'iommu: Default domain type: Passthrough' "$c" || fails+=("iommu.passthrough=1 not in effect")
    fi
    if [ "$name" != "${name%-2smmu}" ]; then
        # Two SMMUs probed, the devices behind each in IOMMU groups, both disks read right (one
        # behind each SMMU: pcie.0's devices behind the first, the root port on bus 0x80 behind
        # the second).
        local nsmmu; nsmmu=$(grep -v '^T: ' "$c" | grep -Ec 'arm-smmu-v3 arm-smmu-v3\.[01]\.auto: (ias [0-9]+-bit, )?oas [0-9]+-bit' || true)
        [ "$nsmmu" = 2 ] || fails+=("$nsmmu SMMUv3 probed, want 2")
        [ "$(t disk2-md5)" = "$disk_md5" ] || fails+=("the disk behind the second SMMU read '$(t disk2-md5)', want $disk_md5")
        grep -q '^T: pci 0000:81:00.0 vendor=0x1af4 device=0x1042 group=[0-9]' "$c" || fails+=("the disk on bus 0x81 is in no IOMMU group")
    fi
    if [ "$name" != "${name%-passthrough}" ] || [ "$iommu" = none ]; then
        :  # no DMA domains, so no invalidation policy
    elif [ "$name" = "${name%-lazy}" ]; then
        grep -q 'TLB invalidation policy: strict mode' "$c" || fails+=("iommu.strict=1 not in effect")
    else
        grep -q 'TLB invalidation policy: lazy mode' "$c" || fails+=("iommu.strict=0 not in effect")
    fi
    if [ "$frontend" = ours ]; then
        ctl counters > "$cdir/counters.txt" 2>&1 || fails+=("iommu-emu-ctl counters failed")
        # Every page the devices reached came from the daemon, as a translation, a run entry of
        # IOMMU_TRANSLATE_RUN (docs/protocol.md §4.3) or an entry a virtio-iommu MAP prefilled
        # (§4.8), or from QEMU's walk of a recipe the daemon published or of the domains' mirror
        # (§4.8, §4.13, walked_pages):
        # a 64 MiB read alone needs 16384 pages.
        local nx np; nx=$(awk '$1 == "translations" {print $2}' "$cdir/counters.txt")
        np=$(awk '$1 == "translated_pages" || $1 == "prefilled_pages" || $1 == "walked_pages" {n += $2} END {print n + 0}' "$cdir/counters.txt")
        [ "${nx:-0}" -gt 0 ] && [ "${np:-0}" -ge 16384 ] \
            || fails+=("the daemon translated ${nx:-0} requests; with QEMU's walks ${np:-0} pages (a 64 MiB read alone needs 16384 pages)")
        grep -q 'iommu-emu: arm-smmuv3 served through chardev\|iommu-emu: virtio-iommu served through chardev' "$c" || fails+=("QEMU did not attach to the daemon")
        # walk recipes (§4.8, version 12): Linux's stage 1 on the default profile is walked by QEMU
        # (published and used); a "+strict" profile publishes none (its detector sees every walk)
        local nrp nwp; nrp=$(awk '$1 == "recipes_published" {print $2}' "$cdir/counters.txt")
        nwp=$(awk '$1 == "walked_pages" {print $2}' "$cdir/counters.txt")
        case $name in smmuv3-7-default|smmuv3-7-io)
            [ "${nrp:-0}" -gt 0 ] && [ "${nwp:-0}" -gt 0 ] \
                || fails+=("QEMU walked no recipe (recipes_published '${nrp:-}', walked_pages '${nwp:-}')") ;;
        esac
        [ "$profile" = "${profile%+strict}" ] || [ "${nrp:-0}" = 0 ] || fails+=("a strict profile published ${nrp} recipes")
        # the command-queue hand-off (§4.12, version 13): QEMU consumed strict-mode TLBI + CMD_SYNC
        # batches itself on the default profile; never on a "+strict" one (its detector sees them all)
        local nhb; nhb=$(awk '$1 == "vmm_cmdq_batches" {print $2}' "$cdir/counters.txt")
        case $name in smmuv3-7-default|smmuv3-7-io)
            [ "${nhb:-0}" -gt 0 ] || fails+=("QEMU consumed no command batch itself (vmm_cmdq_batches '${nhb:-}')") ;;
        esac
        [ "$profile" = "${profile%+strict}" ] || [ "${nhb:-0}" = 0 ] || fails+=("QEMU consumed ${nhb} command batches on a strict profile")
        # the request hand-off (§4.13, version 14): QEMU served MAP/UNMAP requests itself on the
        # default profile; never on a "+strict" one (its detector sees every translation)
        local nvr; nvr=$(awk '$1 == "vmm_requests" {print $2}' "$cdir/counters.txt")
        case $name in viommu-7|viommu-7-io)
            [ "${nvr:-0}" -gt 0 ] || fails+=("QEMU served no virtio-iommu request itself (vmm_requests '${nvr:-}')") ;;
        esac
        [ "$profile" = "${profile%+strict}" ] || [ "${nvr:-0}" = 0 ] || fails+=("QEMU served ${nvr} requests on a strict profile")
        if [ "$iommu" = virtio ] && [ "$name" = "${name%-passthrough}" ]; then
            # virtio-iommu MAPs fill QEMU's shared cache before the first DMA (docs/protocol.md §4.8)
            # (a MAP QEMU served itself is translated from the domains' mirror instead, §4.13)
            local npf; npf=$(awk '$1 == "prefills" {print $2}' "$cdir/counters.txt")
            [ "${npf:-0}" -gt 0 ] || [ "${nvr:-0}" -gt 0 ] \
                || fails+=("the daemon prefilled no translation on MAP and QEMU served none (prefills '${npf:-none}')")
        fi
        if [ "$name" != "${name%-2smmu}" ]; then
            # Each SMMU its own daemon session; both disks' 64 MiB went through the daemon.
            grep -q "arm-smmuv3 served through chardev 'ie1'" "$c" || fails+=("the second SMMU did not attach to the daemon")
            [ "$(grep -c 'VMM connected' "$cdir/daemon.log")" = 2 ] || fails+=("the daemon did not serve two sessions")
            [ "${np:-0}" -ge 32768 ] || fails+=("the daemon translated ${np:-0} pages, want >= 32768 (two 64 MiB disks)")
        fi
        if [ "$name" != "${name%-numa}" ]; then
            # The guest's stream table (SMMU_STRTAB_BASE.ADDR, IHI 0070 §6.3.24: the address bits from 6
            # up) lies in the second node's memfd (0x60000000-0x7fffffff): the daemon reads its STEs there.
            local st; st=$(cat "$cdir/strtab.txt" 2>/dev/null || true)
            case $st in 0x*) ;; *) st= ;; esac
            [ -n "$st" ] && [ $(( st << 6 )) -ge $((0x60000000)) ] && [ $(( st << 6 )) -lt $((0x80000000)) ] \
                || fails+=("SMMU_STRTAB_BASE.ADDR '$(cat "$cdir/strtab.txt" 2>/dev/null)' is not in the second RAM region")
        fi
        if [ "$name" = "${name%-fault}" ]; then
            ! grep -Eq 'event 0x[0-9a-f]+ received|fault from EP' "$c" || fails+=("unexpected fault events in the guest")
            grep -Eq '^faults +0$' "$cdir/counters.txt" || fails+=("the daemon recorded faults: $(grep faults "$cdir/counters.txt")")
        else
            stop_events
            # The edu's requester ID (bus << 8 | device << 3 | function) from the BDF the guest printed:
            # the virt board's iommu-map is the identity, so it is both the SMMUv3 StreamID and the
            # virtio-iommu endpoint ID.
            local bdf rid=none reason
            bdf=$(sed -n "s/^T: edu-dma \([0-9a-f]\{4\}:[0-9a-f]\{2\}:[0-9a-f]\{2\}\.[0-7]\) iova $fault_iova .*cmd 0x00000000\$/\1/p" "$c" | head -n 1)
            if [ -n "$bdf" ]; then
                rid=$(( 16#${bdf:5:2} << 8 | 16#${bdf:8:2} << 3 | ${bdf:11:1} ))
                grep -Eq "^T: edu-bound $bdf driver=pci-stub group=[0-9]+\$" "$c" || fails+=("the edu at $bdf is not bound to pci-stub in an IOMMU group: '$(grep '^T: edu-bound' "$c")'")
            else
                fails+=("the guest did not run the edu's DMA of $fault_iova to completion: '$(grep '^T: edu-dma' "$c" || true)'")
            fi
            if [ "$iommu" = smmuv3 ]; then
                # IHI 0070 §7.3.4 F_TRANSLATION, the record byte for byte: word 0 = StreamID [63:32], SSV 0,
                # type 0x10; word 1 = RnW (bit 99: a read) | CLASS IN (bits 105:104 = 0b10), no stall, S2 0;
                # word 2 = InputAddr; word 3 = IPA, 0 (a stage-1 fault). Linux's arm-smmu-v3 logs
                # "event 0x10 received:" and then the four words.
                local words want; words=$({ grep -A4 'event 0x10 received' "$c" || true; } | sed -n 's/.*arm-smmu-v3[^:]*:[[:space:]]*\(0x[0-9a-f]\{16\}\)$/\1/p' | head -n 4 | tr '\n' ' ')
                want=$(printf '0x%08x%08x 0x%016x 0x%016x 0x%016x ' "${rid/none/0}" 0x10 $(((1 << 35) | (2 << 40))) "$fault_iova" 0)
                [ "$words" = "$want" ] || fails+=("the guest saw no F_TRANSLATION record of StreamID $rid at $fault_iova: words '$words', want '$want'")
                reason=F_TRANSLATION
            else
                # virtio 1.x §5.13.6.8: Linux's virtio-iommu logs "page fault from EP <endpoint> at <address> [R]"
                # for VIRTIO_IOMMU_FAULT_R_MAPPING with the address and read flags.
                grep -Eq "virtio_iommu virtio[0-9]+: page fault from EP $rid at $fault_iova \[R\]" "$c" \
                    || fails+=("the guest saw no virtio-iommu mapping fault of EP $rid at $fault_iova: '$(grep -m1 'fault from EP' "$c")'")
                reason=VIRTIO_IOMMU_FAULT_R_MAPPING
            fi
            grep -q '^T: alive-after' "$c" || fails+=("the guest did not survive the fault")
            # The control API's event stream: the daemon's own record of the edu's read.
            grep -Eq " fault $reason sid=$rid ssid=-1 iova=$fault_iova read\$" "$cdir/events.log" \
                || fails+=("the control API streamed no '$reason sid=$rid iova=$fault_iova read' fault: '$(grep -m3 ' fault ' "$cdir/events.log")'")
            grep -Eq '^faults +1$' "$cdir/counters.txt" || fails+=("the daemon counted '$(grep faults "$cdir/counters.txt" || true)', want faults 1 (the edu's one read)")
        fi
        stop_daemon
        if [ "$name" != "${name%-mismatch-migrate}" ]; then
            # A destination daemon of another profile refuses the state: QEMU's migration fails with
            # the daemon's sentence, nothing is loaded, and the guest runs on at the source.
            grep -q '^migrate: failed' "$cdir/migrate.log" || fails+=("the migration did not fail: $(head -n 2 "$cdir/migrate.log")")
            grep -q "refused IOMMU_LOAD_STATE: the saved state is for SMMUv3 profile 'default'" "$cdir/console-dst.log" \
                || fails+=("the destination QEMU did not say why: $(grep -m1 -i 'iommu-emu' "$cdir/console-dst.log")")
            ! grep -q 'device state loaded' "$cdir/daemon2.log" || fails+=("the destination daemon loaded a refused state")
            grep -q '^T: migrate-rw ok=40 bad=0' "$c" || fails+=("scratch disk passes at the source: '$(sed -n 's/^T: migrate-rw //p' "$c")', want ok=40 bad=0")
            log "$name: $(head -n 1 "$cdir/migrate.log"); $(grep -m1 -o "refused IOMMU_LOAD_STATE.*" "$cdir/console-dst.log")"
        elif [ "$name" != "${name%-migrate}" ]; then
            # The VM moved mid-I/O: the migration completed, the source daemon saved the IOMMU's
            # state and the destination's loaded it, and every write/read pass of the scratch disk,
            # before, during and after, read back what it wrote.
            grep -q '^migrate: completed' "$cdir/migrate.log" || fails+=("the migration did not complete: $(head -n 2 "$cdir/migrate.log")")
            grep -q 'device state saved' "$cdir/daemon.log" || fails+=("the source daemon saved no device state")
            grep -q 'device state loaded' "$cdir/daemon2.log" || fails+=("the destination daemon loaded no device state")
            # protocol.md §4.11: the source daemon logged the guest pages it wrote while QEMU copied
            # RAM (virtio-iommu writes a used element per request, so its log cannot stay empty)
            grep -q 'dirty log of .* started' "$cdir/daemon.log" || fails+=("the source daemon was given no dirty log")
            grep -q 'iommu_emu_dirty_sync .*last stage 1' "$c" || fails+=("the source QEMU did not take the daemon's dirty log at the migration's last sync")
            [ "$iommu" != virtio ] || grep -q 'dirty log stopped after [1-9][0-9]* pages' "$cdir/daemon.log" \
                || fails+=("the source daemon logged no page it wrote: $(grep -m1 'dirty log stopped' "$cdir/daemon.log")")
            grep -q '^T: migrate-rw ok=40 bad=0' "$c" || fails+=("scratch disk passes across the migration: '$(sed -n 's/^T: migrate-rw //p' "$c")', want ok=40 bad=0")
            grep -q 'T: DONE' "$cdir/console-dst.log" || fails+=("the guest did not finish on the destination")
            [ "$profile" = "${profile%+strict}" ] || grep -q 'strict mode found no findings' "$cdir/daemon2.log" \
                || fails+=("the destination's strict mode: $(grep -m1 'strict mode' "$cdir/daemon2.log")")
            log "$name: $(head -n 1 "$cdir/migrate.log"); state $(sed -n 's/.*device state saved (\([0-9]*\) bytes).*/\1/p' "$cdir/daemon.log" | head -n 1) bytes"
        fi
        if [ "$profile" != "${profile%+strict}" ]; then
            # A real Linux on a strict profile: the coherency detector found no stale STE, CD or TLB
            # entry the guest relied on (docs/driver-developers.md), so no translation was used
            # after the invalidation that should have removed it.
            # (-restart: the daemon that took over; the killed one wrote no summary)
            local dlog=$cdir/daemon.log; [ ! -f "$cdir/restart.log" ] || dlog=$cdir/daemon2.log
            grep -q 'strict mode found no findings' "$dlog" || fails+=("strict mode's summary is not 'no findings': $(grep -m1 'strict mode' "$dlog")")
        fi
        if [ "$name" != "${name%-record}" ]; then
            # The session's recording (docs/recording.md) replays against a fresh model without a
            # divergence.
            local rec; rec=$(ls "$cdir"/boot-*.iommurec 2>/dev/null | head -n 1)
            if [ -z "$rec" ]; then
                fails+=("the daemon wrote no recording")
            else
                java -cp "$root/tools/target/benchmarks.jar" dev.iommuemu.tools.cli.IommuEmuCtl replay "$rec" > "$cdir/replay.txt" 2>&1 \
                    || fails+=("the recording does not replay: $(tail -n 3 "$cdir/replay.txt")")
                grep -Eq '^replay: [0-9]+ operations, identical' "$cdir/replay.txt" || fails+=("replay said: $(tail -n 3 "$cdir/replay.txt")")
                log "$name: recording $(stat -c %s "$rec") bytes, $(head -n 1 "$cdir/replay.txt")"
            fi
        fi
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
done 3<<<"$all_cases$([ ${#want[@]} -eq 0 ] || echo "$floor_cases")"

if [ -n "$bench" ]; then
    # Two more runs of each compared pair, so that the table shows medians of three.
    for _ in 1 2; do
        while read -r -u 3 name kernel iommu frontend profile; do
            case $name in builtin-smmuv3-6.1|builtin-smmuv3-6.12|builtin-viommu-6.12|*-6.1-default|*-6.12-default|viommu-6.12) ;; *) continue ;; esac
            if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then continue; fi
            run_case "$name" "$kernel" "$iommu" "$frontend" "$([ "$profile" = - ] && echo "" || echo "$profile")"
        done 3<<<"$all_cases"
    done
    IOMMU_EMU_QEMU_PATH=$qemu "$here/bench-table.sh" "$results" "$root/BENCHMARKS.md"
fi
total=$(wc -l < "$results")
echo "boot: $((total - ${#failed[@]})) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then die "failed: ${failed[*]}"; fi
log "all cases passed"
