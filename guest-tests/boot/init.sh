#!/bin/sh
# /init of the test guest: proves that the virtio devices' DMA goes through the IOMMU, printing
# one "T: <check> <value>" line per fact for the runner (guest-tests/boot/run.sh), then DONE.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "T: init-start $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.list); do modprobe "$m" || echo "T: modprobe-failed $m"; done
n=0; while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
for d in /sys/bus/pci/devices/*; do
    g=$(readlink "$d/iommu_group" 2>/dev/null); g=${g##*/}
    echo "T: pci $(basename "$d") vendor=$(cat "$d/vendor") device=$(cat "$d/device") group=${g:-none}"
done
dmesg | grep -i -e smmu -e iommu -e 'page mask' | sed 's/^/T: dmesg /'
# The disk: one pass over the whole image (its checksum and its read time, uncached).
size=$(cat /sys/block/vda/size 2>/dev/null)
echo "T: disk-sectors ${size:-none}"
t0=$(cut -d' ' -f1 /proc/uptime)
sum=$(dd if=/dev/vda bs=1M 2>/dev/null | md5sum | cut -d' ' -f1)
t1=$(cut -d' ' -f1 /proc/uptime)
echo "T: disk-md5 ${sum}"
echo "T: disk-read-seconds $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
echo "T: hwrng-current $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
echo "T: hwrng-bytes $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | wc -c)"
# The negative case hook: the runner asks for a fault through the control API while we wait.
if grep -q iommuemu.wait /proc/cmdline; then
    echo "T: waiting"; sleep 5
fi
echo "T: alive-after $(cut -d' ' -f1 /proc/uptime)"
echo "T: DONE"
poweroff -f
