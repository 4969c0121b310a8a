#!/bin/sh
# /init of the test guest: proves that the virtio devices' DMA goes through the IOMMU, printing
# one "T: <check> <value>" line per fact for the runner (guest-tests/boot/run.sh), then DONE.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "T: init-start $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.list); do modprobe "$m" || echo "T: modprobe-failed $m"; done
n=0; while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
# The reboot cases (kernel argument iommuemu.reboot): the first boot marks a scratch disk (/dev/vdb,
# written by DMA through the IOMMU like any other) and reboots the machine at once with SysRq 'b'
# (no driver shutdown, so the IOMMU is left enabled and mapping, as after a crash); QEMU's system
# reset must reset the IOMMU too (the runner checks the second boot's driver found it in its reset
# state), and the second boot makes the checks below.
if grep -q iommuemu.reboot /proc/cmdline; then
    n=0; while [ ! -b /dev/vdb ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    if [ "$(dd if=/dev/vdb bs=16 count=1 2>/dev/null)" != iommuemu-booted1 ]; then
        printf iommuemu-booted1 | dd of=/dev/vdb bs=16 count=1 conv=fsync 2>/dev/null
        echo "T: first-boot marked $(dd if=/dev/vdb bs=16 count=1 2>/dev/null), rebooting"
        # The reset-in-the-gap case (iommuemu.gap_reboot): the runner SIGKILLs the daemon on this line
        # and lets a new one in only once the machine has reset, so the reset happens with no daemon:
        # the new daemon must take over from its own reset state (docs/protocol.md §4.10).
        if grep -q iommuemu.gap_reboot /proc/cmdline; then echo "T: kill-daemon-now"; sleep 2; fi
        echo b > /proc/sysrq-trigger
        sleep 10
    fi
    echo "T: second-boot"
fi
# The migration cases (kernel argument iommuemu.migrate): a writer/reader of the scratch disk
# (/dev/vdb) runs in the background, each pass writing 4 MiB by DMA and reading them back (O_DIRECT,
# so every pass goes through the IOMMU); the runner migrates the VM to a second QEMU and daemon when
# it sees "T: migrate-now", so passes run before, during and after; every pass must read back what it
# wrote, and everything below (disk, readers) runs on the destination. The restart cases (kernel
# argument iommuemu.restart) run the same passes and print "T: restart-now", on which the runner
# SIGKILLs the daemon and starts a new one that takes over the IOMMU's state mid-I/O.
mig_pid=
tag=; grep -q iommuemu.migrate /proc/cmdline && tag=migrate; grep -q iommuemu.restart /proc/cmdline && tag=restart
if [ -n "$tag" ]; then
    n=0; while [ ! -b /dev/vdb ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    dd if=/dev/urandom of=/tmp/pattern bs=1M count=4 2>/dev/null
    want=$(md5sum < /tmp/pattern | cut -d' ' -f1)
    ( ok=0; bad=0; i=0
      while [ $i -lt 40 ]; do
          dd if=/tmp/pattern of=/dev/vdb bs=1M count=4 oflag=direct conv=fsync 2>/dev/null
          got=$(dd if=/dev/vdb bs=1M count=4 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
          if [ "$got" = "$want" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
          i=$((i + 1))
      done
      echo "T: $tag-rw ok=$ok bad=$bad" ) &
    mig_pid=$!
    echo "T: $tag-now"
fi
for d in /sys/bus/pci/devices/*; do
    g=$(readlink "$d/iommu_group" 2>/dev/null); g=${g##*/}
    echo "T: pci $(basename "$d") vendor=$(cat "$d/vendor") device=$(cat "$d/device") group=${g:-none}"
done
dmesg | grep -i -e smmu -e iommu -e 'page mask' | sed 's/^/T: dmesg /'
echo "T: numa-nodes $(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)"
# The disk: one pass over the whole image (its checksum and its read time, uncached).
size=$(cat /sys/block/vda/size 2>/dev/null)
echo "T: disk-sectors ${size:-none}"
t0=$(cut -d' ' -f1 /proc/uptime)
sum=$(dd if=/dev/vda bs=1M 2>/dev/null | md5sum | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
echo "T: disk-md5 ${sum}"
echo "T: disk-read-seconds $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
# Concurrent readers (kernel argument iommuemu.readers=N, with -smp N): N processes each read one
# N-th of the disk at once, so translations of several vCPUs' DMA are in flight together; each
# prints its part's checksum (the runner knows every part's).
readers=$(sed -n 's/.*iommuemu\.readers=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$readers" ] && [ -n "$size" ]; then
    part=$((size / 2048 / readers))  # MiB per reader
    # The readers' IOMMU work, counted by the guest itself: hits of the kernel's iommu:map and
    # iommu:unmap tracepoints (include/trace/events/iommu.h) through a hist trigger. How many
    # MAP/UNMAP a reader's 1 MiB O_DIRECT read takes depends on how contiguous its buffer's pages
    # happen to be, which varies between boots with any IOMMU (BENCHMARKS.md).
    tr=/sys/kernel/tracing
    mount -t tracefs tracefs "$tr" 2>/dev/null
    for e in map unmap; do echo 'hist:keys=common_pid' > "$tr/events/iommu/$e/trigger" 2>/dev/null; done
    t0=$(cut -d' ' -f1 /proc/uptime)
    i=0; while [ $i -lt "$readers" ]; do
        ( echo "T: reader-md5 $i $(dd if=/dev/vda bs=1M skip=$((i * part)) count=$part iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" ) &
        i=$((i + 1))
    done
    wait
    t1=$(cut -d' ' -f1 /proc/uptime)
    echo "T: readers-seconds $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
    calls=0
    for e in map unmap; do
        h=$(sed -n 's/^ *Hits: *\([0-9]*\)$/\1/p' "$tr/events/iommu/$e/hist" 2>/dev/null)
        d=$(sed -n 's/^ *Dropped: *\([0-9]*\)$/\1/p' "$tr/events/iommu/$e/hist" 2>/dev/null)
        if [ -n "$h" ] && [ "${d:-0}" = 0 ] && [ "$calls" != "?" ]; then calls=$((calls + h)); else calls="?"; fi
        echo '!hist:keys=common_pid' > "$tr/events/iommu/$e/trigger" 2>/dev/null
    done
    echo "T: readers-iommu-calls $calls"
fi
# The kernel's text symbols (kernel argument iommuemu.kallsyms), for spin-profile.sh.
if grep -q iommuemu.kallsyms /proc/cmdline; then grep " [tT] " /proc/kallsyms | sed "s/^/K: /"; fi
# An NVMe disk (kernel argument iommuemu.nvme): QEMU's nvme device DMAs its queues and data through
# the IOMMU with no virtio flag.
if grep -q iommuemu.nvme /proc/cmdline; then
    n=0; while [ ! -b /dev/nvme0n1 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    echo "T: nvme-md5 $(dd if=/dev/nvme0n1 bs=1M 2>/dev/null | md5sum | cut -d' ' -f1)"
fi
# A NIC with real traffic (kernel argument iommuemu.net): e1000e on QEMU's user network; a file from
# its TFTP server (10.0.2.2, QEMU's slirp) arrives through the NIC's receive DMA.
if grep -q iommuemu.net /proc/cmdline; then
    eth=; for d in /sys/class/net/*; do [ -e "$d/device" ] && eth=${d##*/} && break; done
    if [ -n "$eth" ]; then
        ip addr add 10.0.2.15/24 dev "$eth"; ip link set "$eth" up
        n=0; while ! ping -c 1 -W 1 10.0.2.2 >/dev/null 2>&1 && [ $n -lt 20 ]; do n=$((n + 1)); done
        t0=$(cut -d' ' -f1 /proc/uptime)
        tftp -g -b 1468 -r blob -l /tmp/blob 10.0.2.2 || echo "T: net-tftp-failed"
        t1=$(cut -d' ' -f1 /proc/uptime)
        echo "T: net-md5 $(md5sum /tmp/blob 2>/dev/null | cut -d' ' -f1)"
        echo "T: net-seconds $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
        rm -f /tmp/blob
    else
        echo "T: net-md5 no-interface"
    fi
fi
# A second disk behind a second IOMMU (kernel argument iommuemu.disk2): the same image as /dev/vda.
if grep -q iommuemu.disk2 /proc/cmdline; then
    n=0; while [ ! -b /dev/vdb ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
    echo "T: disk2-md5 $(dd if=/dev/vdb bs=1M 2>/dev/null | md5sum | cut -d' ' -f1)"
fi
echo "T: hwrng-current $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
echo "T: hwrng-bytes $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | wc -c)"
# The negative case (kernel argument iommuemu.edu_dma=IOVA): QEMU's edu test device (PCI 1234:11e8,
# QEMU docs/specs/edu.rst) reads 4 bytes at IOVA into its own buffer. pci-stub claims it first: binding
# a driver is what makes Linux configure the device's DMA (IOMMU group, default DMA domain); an
# unclaimed device stays out of any group and its stream is left aborting (SMMUv3 STE.Config = abort,
# which records no event). Nothing is mapped in that domain, so the IOMMU must fault the read (the
# runner checks the guest driver's report and the daemon's) and the guest carries on.
iova=$(sed -n 's/.*iommuemu\.edu_dma=\(0x[0-9a-fA-F]*\).*/\1/p' /proc/cmdline)
if [ -n "$iova" ]; then
    edu=
    for d in /sys/bus/pci/devices/*; do
        if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then edu=$d; break; fi
    done
    if [ -n "$edu" ]; then
        modprobe pci_stub || echo "T: modprobe-failed pci_stub"
        echo "1234 11e8" > /sys/bus/pci/drivers/pci-stub/new_id
        g=$(readlink "$edu/iommu_group" 2>/dev/null); g=${g##*/}
        drv=$(readlink "$edu/driver" 2>/dev/null); drv=${drv##*/}
        echo "T: edu-bound $(basename "$edu") driver=${drv:-none} group=${g:-none}"
    fi
    bar0=$([ -z "$edu" ] || head -n 1 "$edu/resource" | cut -d' ' -f1)
    if [ -z "$edu" ] || [ $((bar0)) = 0 ]; then
        echo "T: edu-dma none (device ${edu:-absent}, BAR0 ${bar0:-none})"
    else
        # PCI command register (config offset 0x4, PCI Local Bus 3.0 §6.2.2): Memory Space (bit 1),
        # Bus Master (bit 2); no driver enabled either.
        printf '\006\000' | dd of="$edu/config" bs=2 seek=2 count=1 conv=notrunc 2>/dev/null
        r() { printf '0x%x' $((bar0 + $1)); }
        # edu.rst "MMIO area spec": 0x80 DMA source, 0x88 destination (the 4 KiB buffer at 0x40000 of
        # the device's own space), 0x90 count, 0x98 command (bit 0 start, bit 1 direction: 0 = from
        # RAM to the device, i.e. a DMA read of the source). The transfer runs from a 100 ms timer.
        devmem "$(r 0x80)" 32 "$iova"
        devmem "$(r 0x88)" 32 0x40000
        devmem "$(r 0x90)" 32 4
        devmem "$(r 0x98)" 32 1
        n=0; while [ $(($(devmem "$(r 0x98)" 32) & 1)) = 1 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
        echo "T: edu-dma $(basename "$edu") iova $iova bar0 $bar0 cmd $(devmem "$(r 0x98)" 32)"
        sleep 1  # the fault interrupt's handler logs the event
    fi
fi
[ -z "$mig_pid" ] || wait "$mig_pid"
echo "T: alive-after $(cut -d' ' -f1 /proc/uptime)"
echo "T: DONE"
poweroff -f
