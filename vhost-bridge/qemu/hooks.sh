#!/usr/bin/env bash
# The one-line hooks of iommu-emu into QEMU's own files, applied by build-qemu.sh to the QEMU
# source tree "$1" (idempotent: a hook already present is left alone). Each hook is inserted after
# the first line matching an anchor, searched from the first line matching a start pattern.
set -euo pipefail
s=$1
hook() { # file, start pattern, anchor pattern (fixed strings), line to insert after the anchor
    python3 - "$s/$1" "$2" "$3" "$4" <<'PY'
import sys
path, start, anchor, line = sys.argv[1:]
src = open(path).read().split('\n')
if line in src:
    sys.exit(0)
i = next((n for n, l in enumerate(src) if start in l), None)
j = None if i is None else next((n for n in range(i, len(src)) if anchor in src[n]), None)
if j is None:
    sys.exit(f"hooks.sh: anchor '{start}' ... '{anchor}' not found in {path}")
src.insert(j + 1, line)
open(path, 'w').write('\n'.join(src))
PY
}
# build: our two files next to QEMU's SMMUv3
hook hw/arm/meson.build "'smmuv3.c'" "'smmuv3.c'" \
  "arm_ss.add(when: 'CONFIG_ARM_SMMUV3', if_true: files('iommu-emu-client.c', 'iommu-emu-smmuv3.c'))  # iommu-emu"
# SMMUv3: property, connection, MMIO and translation forwarding
hook hw/arm/smmuv3.c '#include "smmuv3-internal.h"' '#include "smmuv3-internal.h"' \
  '#include "hw/arm/iommu-emu.h"'
hook hw/arm/smmuv3.c 'static MemTxResult smmu_write_mmio(' '{' \
  '    if (iommu_emu_smmuv3_enabled(opaque)) { return iommu_emu_smmuv3_write(opaque, offset, data, size); } /* iommu-emu */'
hook hw/arm/smmuv3.c 'static MemTxResult smmu_read_mmio(' '{' \
  '    if (iommu_emu_smmuv3_enabled(opaque)) { return iommu_emu_smmuv3_read(opaque, offset, data, size); } /* iommu-emu */'
hook hw/arm/smmuv3.c 'static IOMMUTLBEntry smmuv3_translate(' '{' \
  '    IOMMUTLBEntry iommu_emu_entry; if (iommu_emu_smmuv3_translate(mr, addr, flag, &iommu_emu_entry)) { return iommu_emu_entry; } /* iommu-emu */'
hook hw/arm/smmuv3.c 'static void smmu_reset(' 'smmuv3_init_regs(s);' \
  '    iommu_emu_smmuv3_reset(s); /* iommu-emu */'
hook hw/arm/smmuv3.c 'static void smmu_realize(' 'smmu_init_irq(s, dev);' \
  '    iommu_emu_smmuv3_realize(s, errp); /* iommu-emu */'
hook hw/arm/smmuv3.c 'static void smmuv3_class_init(' 'dc->realize = smmu_realize;' \
  '    iommu_emu_smmuv3_class_init(klass); /* iommu-emu */'
# virtio-iommu: property and device-class callbacks, connection, translation forwarding
hook hw/virtio/meson.build "'virtio-iommu.c'" "'virtio-iommu.c'" \
  "virtio_ss.add(when: 'CONFIG_VIRTIO_IOMMU', if_true: files('iommu-emu-viommu.c'))  # iommu-emu"
hook hw/virtio/virtio-iommu.c '#include "hw/virtio/virtio-iommu.h"' '#include "hw/virtio/virtio-iommu.h"' \
  '#include "hw/arm/iommu-emu.h"'
hook hw/virtio/virtio-iommu.c 'static IOMMUTLBEntry virtio_iommu_translate(' '{' \
  '    IOMMUTLBEntry iommu_emu_entry; if (iommu_emu_viommu_translate(mr, addr, flag, &iommu_emu_entry)) { return iommu_emu_entry; } /* iommu-emu */'
hook hw/virtio/virtio-iommu.c 'static void virtio_iommu_system_reset(' 's->config.bypass = s->boot_bypass;' \
  '    iommu_emu_viommu_system_reset(DEVICE(s)); /* iommu-emu */'
hook hw/virtio/virtio-iommu.c 'static void virtio_iommu_device_realize(' 'qemu_register_reset(virtio_iommu_system_reset, s);' \
  '    iommu_emu_viommu_realize(dev, errp); /* iommu-emu */'
hook hw/virtio/virtio-iommu.c 'static void virtio_iommu_class_init(' 'vdc->vmsd = &vmstate_virtio_iommu_device;' \
  '    iommu_emu_viommu_class_init(klass); /* iommu-emu */'
