#!/bin/sh
# /init of the nesting-host guest (a Linux 7.x built with IOMMUFD, guest-tests/nesting-host/README.md):
# binds QEMU's edu device (PCI 1234:11e8) to vfio-pci, then runs iommufd-nest on its VFIO cdev as a
# nested guest's VMM would. Kernel argument iommuemu.nest=ARGS: iommufd-nest's options, commas kept
# ("expect-idr:I0,..,I5" or "no-nesting").
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
edu=
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] && edu=${d##*/}
done
echo "T: edu ${edu:-none} group=$(basename "$(readlink "/sys/bus/pci/devices/$edu/iommu_group" 2>/dev/null)")"
echo vfio-pci > "/sys/bus/pci/devices/$edu/driver_override"
echo "$edu" > /sys/bus/pci/drivers_probe
cdev=/dev/vfio/devices/$(ls "/sys/bus/pci/devices/$edu/vfio-dev/" 2>/dev/null)
echo "T: cdev $cdev"
arg=$(sed -n 's/.*iommuemu\.nest=\([^ ]*\).*/\1/p' /proc/cmdline)
case $arg in
    expect-idr:*) /iommufd-nest "$cdev" --expect-idr "${arg#expect-idr:}" ;;
    no-nesting) /iommufd-nest "$cdev" --expect-no-nesting ;;
    *) /iommufd-nest "$cdev" ;;
esac
echo "T: nest-exit $?"
echo "T: DONE"
poweroff -f
