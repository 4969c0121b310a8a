/*
 * iommu-emu front-end for QEMU's arm-smmuv3: with the property "iommu-emu" set to the daemon's
 * socket, the device keeps the virt board's wiring (device tree / IORT node, SPIs, per-PCI-device
 * IOMMU memory regions) and forwards its behaviour to the iommu-emu daemon:
 *   MMIO pages 0 and 1      -> IOMMU_MMIO_READ / IOMMU_MMIO_WRITE
 *   translate callback      -> IOMMU_TRANSLATE_RUN, cached per (StreamID, entry)
 *   device reset            -> RESET_DEVICE (a system reset resets the daemon's SMMUv3 too)
 *   IOTLB invalidations     <- IOMMU_IOTLB_INVALIDATE on the back-end channel: cache entries
 *                              dropped and UNMAP notifiers told before the ack, so the guest's
 *                              CMD_SYNC completes only after QEMU forgot the old translations
 *   wired interrupts        <- eventfds per line (IHI 0070 §3.18: EVTQ, PRIQ, CMD_SYNC, GERROR)
 * Example:  -global arm-smmuv3.iommu-emu=/run/iommu-emu.sock
 *
 * Copyright (c) 2026 The iommu-emu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "hw/irq.h"
#include "hw/qdev-core.h"
#include "hw/pci/pci.h"
#include "hw/arm/smmuv3.h"
#include "hw/arm/iommu-emu.h"

#define IE_SMMU_MMIO_SIZE 0x20000

typedef struct IESmmu {
    SMMUv3State *s;
    char *path;
    IEClient *client;
    EventNotifier irq[IE_MAX_LINES];
    int line_irq[IE_MAX_LINES]; /* index into SMMUv3State.irq, -1 = not wired */
} IESmmu;

/* One per arm-smmuv3 instance that has the property set (the virt board has at most one). */
static GHashTable *ie_smmus;

static IESmmu *ie_smmu(void *dev)
{
    return ie_smmus ? g_hash_table_lookup(ie_smmus, dev) : NULL;
}

static char *ie_prop_get(Object *obj, Error **errp)
{
    IESmmu *m = ie_smmu(obj);
    return g_strdup(m ? m->path : "");
}

static void ie_prop_set(Object *obj, const char *value, Error **errp)
{
    if (!ie_smmus) {
        ie_smmus = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    IESmmu *m = ie_smmu(obj);
    if (!*value) {
        if (m) {
            g_hash_table_remove(ie_smmus, obj);
            g_free(m->path);
            g_free(m);
        }
        return;
    }
    if (!m) {
        m = g_new0(IESmmu, 1);
        m->s = ARM_SMMUV3(obj);
        g_hash_table_insert(ie_smmus, obj, m);
    }
    g_free(m->path);
    m->path = g_strdup(value);
}

void iommu_emu_smmuv3_class_init(ObjectClass *klass)
{
    object_class_property_add_str(klass, "iommu-emu", ie_prop_get, ie_prop_set);
    object_class_property_set_description(klass, "iommu-emu",
        "unix socket of the iommu-emu daemon that emulates this SMMUv3 (empty = QEMU's model)");
}

bool iommu_emu_smmuv3_enabled(void *opaque)
{
    IESmmu *m = ie_smmu(opaque);
    return m && m->client;
}

MemTxResult iommu_emu_smmuv3_read(void *opaque, hwaddr offset, uint64_t *data, unsigned size)
{
    IESmmu *m = ie_smmu(opaque);
    return ie_client_mmio_read(m->client, offset, size, data) == 0 ? MEMTX_OK : MEMTX_ERROR;
}

MemTxResult iommu_emu_smmuv3_write(void *opaque, hwaddr offset, uint64_t data, unsigned size)
{
    IESmmu *m = ie_smmu(opaque);
    return ie_client_mmio_write(m->client, offset, size, data) == 0 ? MEMTX_OK : MEMTX_ERROR;
}

/* QEMU's smmu_reset (system reset): the daemon's registers go back to their reset values
 * (IHI 0070 §6.3: SMMUEN == 0 ...) and QEMU forgets every translation it cached. */
void iommu_emu_smmuv3_reset(SMMUv3State *s)
{
    IESmmu *m = ie_smmu(s);
    if (m && m->client) {
        ie_client_reset(m->client);
    }
}

bool iommu_emu_smmuv3_translate(IOMMUMemoryRegion *mr, hwaddr addr, IOMMUAccessFlags flag,
                                IOMMUTLBEntry *entry)
{
    SMMUDevice *sdev = container_of(mr, SMMUDevice, iommu);
    IESmmu *m = ie_smmu(sdev->smmu);
    if (!m || !m->client) {
        return false;
    }
    /* The virt board's iommu-map is the identity: StreamID = PCI requester ID (bus << 8 | devfn). */
    ie_client_translate(m->client, smmu_get_sid(sdev), addr, flag & IOMMU_WO, entry);
    return true;
}

/* Back-end thread: drop cached translations, then unmap them from registered notifiers. */
static void ie_smmu_invalidate(void *opaque, uint32_t endpoint, uint64_t iova, uint64_t size)
{
    IESmmu *m = opaque;
    SMMUState *bs = ARM_SMMU(m->s);
    SMMUDevice *sdev;

    ie_client_cache_invalidate(m->client, endpoint, iova, size);
    QLIST_FOREACH(sdev, &bs->devices_with_notifiers, next) {
        if (endpoint != UINT32_MAX && endpoint != smmu_get_sid(sdev)) {
            continue;
        }
        /* An UNMAP event names a naturally aligned power-of-two range: widen to everything
         * when the daemon's range is not one (over-invalidation is always correct). */
        bool exact = size != 0 && size != UINT64_MAX && !(size & (size - 1)) && !(iova & (size - 1));
        IOMMUTLBEvent ev = {
            .type = IOMMU_NOTIFIER_UNMAP,
            .entry = {
                .target_as = &address_space_memory,
                .iova = exact ? iova : 0,
                .addr_mask = exact ? size - 1 : UINT64_MAX,
                .perm = IOMMU_NONE,
            },
        };
        memory_region_notify_iommu(&sdev->iommu, 0, ev);
    }
}

static void ie_smmu_irq(void *opaque)
{
    EventNotifier *n = opaque;
    IESmmu *m = NULL;
    GHashTableIter it;
    gpointer k, v;

    event_notifier_test_and_clear(n);
    g_hash_table_iter_init(&it, ie_smmus);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        IESmmu *c = v;
        if (n >= c->irq && n < c->irq + IE_MAX_LINES) {
            m = c;
        }
    }
    if (m) {
        int line = m->line_irq[n - m->irq];
        if (line >= 0) {
            qemu_irq_pulse(m->s->irq[line]); /* the virt board's SPIs are edge-triggered */
        }
    }
}

/* IHI 0070 §3.18: the wired interrupt sources, by the daemon's line names (docs/protocol.md §4.1). */
static int ie_line_to_irq(const char *name)
{
    static const char *const names[] = { "evtq", "priq", "cmd-sync", "gerror" };
    for (int i = 0; i < ARRAY_SIZE(names); i++) {
        if (!strcmp(name, names[i])) {
            return i; /* SMMU_IRQ_EVTQ, SMMU_IRQ_PRIQ, SMMU_IRQ_CMD_SYNC, SMMU_IRQ_GERROR */
        }
    }
    return strcmp(name, "cmdq-sync") ? -1 : 2;
}

void iommu_emu_smmuv3_realize(SMMUv3State *s, Error **errp)
{
    IESmmu *m = ie_smmu(s);
    IEInfo info;

    if (!m || !m->path) {
        return;
    }
    m->client = ie_client_connect(m->path, IE_MODEL_SMMUV3, &info, errp);
    if (!m->client) {
        return;
    }
    if (info.model != IE_MODEL_SMMUV3 || info.mmio_size != IE_SMMU_MMIO_SIZE) {
        error_setg(errp, "iommu-emu: the daemon serves model %u with 0x%" PRIx64
                   " bytes of MMIO, not an SMMUv3", info.model, info.mmio_size);
        goto fail;
    }
    if (ie_client_set_guest_ram(m->client, errp) ||
        ie_client_start_backend(m->client, ie_smmu_invalidate, m, errp)) {
        goto fail;
    }
    ie_client_start_ring(m->client);
    for (unsigned i = 0; i < info.nlines; i++) {
        m->line_irq[i] = ie_line_to_irq(info.line_name[i]);
        if (m->line_irq[i] < 0) {
            warn_report("iommu-emu: interrupt line '%s' has no wire on this board",
                        info.line_name[i]);
            continue;
        }
        if (event_notifier_init(&m->irq[i], 0) < 0) {
            error_setg(errp, "iommu-emu: eventfd for line %s", info.line_name[i]);
            goto fail;
        }
        qemu_set_fd_handler(event_notifier_get_fd(&m->irq[i]), ie_smmu_irq, NULL, &m->irq[i]);
        if (ie_client_set_irq_fd(m->client, i, event_notifier_get_fd(&m->irq[i]), errp)) {
            goto fail;
        }
    }
    info_report("iommu-emu: arm-smmuv3 served by %s (profile '%s')", m->path, info.profile);
    return;
fail:
    m->client = NULL;
}
