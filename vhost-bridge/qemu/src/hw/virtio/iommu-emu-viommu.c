/*
 * iommu-emu front-end for QEMU's virtio-iommu: with the property "iommu-emu" of
 * virtio-iommu-device set to the daemon's socket, the virt board keeps its virtio-iommu-pci wiring
 * (PCI function, device tree / VIOT description, MSI-X or INTx) and the device's behaviour moves to
 * the iommu-emu daemon:
 *   device features, config space  -> GET_FEATURES / SET_FEATURES, GET_CONFIG / SET_CONFIG
 *   request and event virtqueues    -> served by the daemon with vhost-user vring messages
 *                                      (SET_VRING_NUM/ADDR/BASE/KICK/CALL) once the driver sets
 *                                      DRIVER_OK (virtio 1.x §3.1.1); kicks are ioeventfds, used
 *                                      buffers raise the queue's interrupt through its call eventfd
 *   device reset (status 0)         -> RESET_DEVICE: the daemon's domains and mappings go
 *                                      (virtio 1.x §2.1.2, §3.1.1), QEMU's cache empties
 *   system reset                    -> IOMMU_SYSTEM_RESET: also config.bypass back to its
 *                                      initial value, which a device reset keeps (§5.13.4)
 *   translate callback              -> IOMMU_TRANSLATE_RUN, cached per (endpoint ID, entry);
 *                                      the daemon invalidates on UNMAP/DETACH (virtio 1.x §5.13.6.6):
 *                                      cache entries dropped, UNMAP notifiers told, then the ack
 * Example:  -global virtio-iommu-device.iommu-emu=/run/iommu-emu.sock -device virtio-iommu-pci
 *
 * Copyright (c) 2026 The iommu-emu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "hw/qdev-core.h"
#include "hw/pci/pci.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-bus.h"
#include "hw/virtio/virtio-iommu.h"
#include "sysemu/dma.h"
#include "hw/arm/iommu-emu.h"

#define IE_VIOMMU_CONFIG_SIZE 40   /* struct virtio_iommu_config, virtio 1.x §5.13.4 */
#define IE_F_PROTOCOL_FEATURES (1ull << 30)

typedef struct IEViommu {
    VirtIOIOMMU *s;
    char *path;
    IEClient *client;
    uint64_t features;   /* the daemon's device features */
    int started;         /* number of rings handed to the daemon */
} IEViommu;

static GHashTable *ie_viommus;
static void (*ie_orig_set_status)(VirtIODevice *vdev, uint8_t status);
static void (*ie_orig_get_config)(VirtIODevice *vdev, uint8_t *config);
static void (*ie_orig_set_config)(VirtIODevice *vdev, const uint8_t *config);
static uint64_t (*ie_orig_get_features)(VirtIODevice *vdev, uint64_t f, Error **errp);

static IEViommu *ie_viommu(void *dev)
{
    return ie_viommus ? g_hash_table_lookup(ie_viommus, dev) : NULL;
}

static IEViommu *ie_active(void *dev)
{
    IEViommu *m = ie_viommu(dev);
    return m && m->client ? m : NULL;
}

static char *ie_prop_get(Object *obj, Error **errp)
{
    IEViommu *m = ie_viommu(obj);
    return g_strdup(m && m->path ? m->path : "");
}

static void ie_prop_set(Object *obj, const char *value, Error **errp)
{
    if (!ie_viommus) {
        ie_viommus = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    IEViommu *m = ie_viommu(obj);
    if (!m) {
        m = g_new0(IEViommu, 1);
        m->s = VIRTIO_IOMMU(obj);
        g_hash_table_insert(ie_viommus, obj, m);
    }
    g_free(m->path);
    m->path = *value ? g_strdup(value) : NULL;
}

/* virtio 1.x §5.13.3: the device's feature bits are the daemon's. */
static uint64_t ie_get_features(VirtIODevice *vdev, uint64_t f, Error **errp)
{
    IEViommu *m = ie_active(vdev);
    if (!m) {
        return ie_orig_get_features(vdev, f, errp);
    }
    return m->features & ~IE_F_PROTOCOL_FEATURES;
}

/* §3.4 GET_CONFIG / SET_CONFIG: {u32 offset, u32 size, u32 flags, u8 data[size]}. */
static void ie_get_config(VirtIODevice *vdev, uint8_t *config)
{
    IEViommu *m = ie_active(vdev);
    uint8_t p[12 + IE_VIOMMU_CONFIG_SIZE] = { 0 }, r[12 + IE_VIOMMU_CONFIG_SIZE];
    if (!m) {
        ie_orig_get_config(vdev, config);
        return;
    }
    stl_le_p(p + 4, IE_VIOMMU_CONFIG_SIZE);
    if (ie_client_request(m->client, IE_REQ_GET_CONFIG, p, sizeof(p), NULL, 0, false, r,
                          sizeof(r)) == 0) {
        memcpy(config, r + 12, IE_VIOMMU_CONFIG_SIZE);
    }
}

static void ie_set_config(VirtIODevice *vdev, const uint8_t *config)
{
    IEViommu *m = ie_active(vdev);
    uint8_t p[12 + IE_VIOMMU_CONFIG_SIZE] = { 0 };
    if (!m) {
        ie_orig_set_config(vdev, config);
        return;
    }
    stl_le_p(p + 4, IE_VIOMMU_CONFIG_SIZE);
    memcpy(p + 12, config, IE_VIOMMU_CONFIG_SIZE);
    ie_client_request(m->client, IE_REQ_SET_CONFIG, p, sizeof(p), NULL, 0, true, NULL, 0);
}

static int ie_ring_u64(IEViommu *m, uint32_t req, uint64_t v, int fd, Error **errp)
{
    uint8_t p[8];
    stq_le_p(p, v);
    return ie_check(ie_client_request(m->client, req, p, 8, &fd, fd >= 0 ? 1 : 0, true, NULL, 0),
                    "vring setup", errp);
}

static int ie_ring_state(IEViommu *m, uint32_t req, uint32_t index, uint32_t num, Error **errp)
{
    uint8_t p[8];
    stl_le_p(p, index);
    stl_le_p(p + 4, num);
    return ie_check(ie_client_request(m->client, req, p, 8, NULL, 0, true, NULL, 0),
                    "vring setup", errp);
}

/* Hands both virtqueues to the daemon, as a vhost-user front-end does when the driver is ready. */
static int ie_start_rings(IEViommu *m, VirtIODevice *vdev, Error **errp)
{
    BusState *qbus = BUS(qdev_get_parent_bus(DEVICE(vdev)));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    int nvqs = 2, r;

    if (ie_ring_u64(m, IE_REQ_SET_FEATURES, vdev->guest_features, -1, errp)) {
        return -1;
    }
    r = virtio_device_grab_ioeventfd(vdev);
    if (r < 0) {
        error_setg_errno(errp, -r, "iommu-emu: virtio-iommu needs ioeventfd for its kicks");
        return -1;
    }
    if (!k->set_guest_notifiers || k->set_guest_notifiers(qbus->parent, nvqs, true) < 0) {
        error_setg(errp, "iommu-emu: cannot set up the virtio-iommu's guest notifiers");
        return -1;
    }
    for (int n = 0; n < nvqs; n++) {
        VirtQueue *vq = virtio_get_queue(vdev, n);
        uint8_t addr[40] = { 0 };
        if (virtio_queue_get_num(vdev, n) == 0) {
            continue;
        }
        /* struct vhost_vring_addr {u32 index, u32 flags, u64 desc, used, avail, log}: VMM addresses */
        stl_le_p(addr, n);
        stq_le_p(addr + 8, ie_client_gpa_to_uaddr(m->client, virtio_queue_get_desc_addr(vdev, n)));
        stq_le_p(addr + 16, ie_client_gpa_to_uaddr(m->client, virtio_queue_get_used_addr(vdev, n)));
        stq_le_p(addr + 24, ie_client_gpa_to_uaddr(m->client, virtio_queue_get_avail_addr(vdev, n)));
        if (ie_ring_state(m, IE_REQ_SET_VRING_NUM, n, virtio_queue_get_num(vdev, n), errp) ||
            ie_check(ie_client_request(m->client, IE_REQ_SET_VRING_ADDR, addr, sizeof(addr), NULL,
                                       0, true, NULL, 0), "SET_VRING_ADDR", errp) ||
            ie_ring_state(m, IE_REQ_SET_VRING_BASE, n, virtio_queue_get_last_avail_idx(vdev, n),
                          errp)) {
            return -1;
        }
        r = virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), n, true);
        if (r < 0) {
            error_setg_errno(errp, -r, "iommu-emu: host notifier of virtqueue %d", n);
            return -1;
        }
        if (ie_ring_u64(m, IE_REQ_SET_VRING_CALL, n,
                        event_notifier_get_fd(virtio_queue_get_guest_notifier(vq)), errp) ||
            ie_ring_u64(m, IE_REQ_SET_VRING_KICK, n,
                        event_notifier_get_fd(virtio_queue_get_host_notifier(vq)), errp)) {
            return -1;
        }
        m->started = n + 1;
    }
    return 0;
}

static void ie_set_status(VirtIODevice *vdev, uint8_t status)
{
    IEViommu *m = ie_active(vdev);
    Error *err = NULL;

    ie_orig_set_status(vdev, status);
    if (!m) {
        return;
    }
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !m->started && vdev->vm_running) {
        if (ie_start_rings(m, vdev, &err) < 0) {
            error_report_err(err);
            virtio_error(vdev, "iommu-emu: the daemon could not take the virtqueues");
        }
    } else if (!(status & VIRTIO_CONFIG_S_DRIVER_OK) && m->started) {
        /* Reset or failure: GET_VRING_BASE stops each ring in the daemon (vhost-user). */
        uint8_t p[8] = { 0 }, r[8];
        for (int n = 0; n < m->started; n++) {
            stl_le_p(p, n);
            ie_client_request(m->client, IE_REQ_GET_VRING_BASE, p, 8, NULL, 0, false, r, 8);
            virtio_bus_set_host_notifier(VIRTIO_BUS(qdev_get_parent_bus(DEVICE(vdev))), n, false);
        }
        m->started = 0;
    }
    if (status == 0) {
        /* virtio 1.x §2.1.2 device reset (the driver's, or a system reset): the daemon's device
         * forgets its domains and mappings, as QEMU's own virtio-iommu does. */
        ie_client_reset(m->client);
    }
}

/* QEMU's virtio_iommu_system_reset (a machine reset, after the device reset above). */
void iommu_emu_viommu_system_reset(DeviceState *dev)
{
    IEViommu *m = ie_active(dev);
    if (m && m->client->version >= 6 &&
        ie_client_request(m->client, IE_REQ_SYSTEM_RESET, NULL, 0, NULL, 0, true, NULL, 0) != 0) {
        warn_report("iommu-emu: the daemon did not take the system reset");
    }
}

void iommu_emu_viommu_class_init(ObjectClass *klass)
{
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);

    object_class_property_add_str(klass, "iommu-emu", ie_prop_get, ie_prop_set);
    object_class_property_set_description(klass, "iommu-emu",
        "unix socket of the iommu-emu daemon that emulates this virtio-iommu (empty = QEMU's model)");
    ie_orig_set_status = vdc->set_status;
    ie_orig_get_config = vdc->get_config;
    ie_orig_set_config = vdc->set_config;
    ie_orig_get_features = vdc->get_features;
    vdc->set_status = ie_set_status;
    vdc->get_config = ie_get_config;
    vdc->set_config = ie_set_config;
    vdc->get_features = ie_get_features;
}

bool iommu_emu_viommu_translate(IOMMUMemoryRegion *mr, hwaddr addr, IOMMUAccessFlags flag,
                                IOMMUTLBEntry *entry)
{
    IOMMUDevice *sdev = container_of(mr, IOMMUDevice, iommu_mr);
    IEViommu *m = ie_active(sdev->viommu);
    if (!m) {
        return false;
    }
    /* The virt board's iommu-map/VIOT: endpoint ID = PCI requester ID (bus << 8 | devfn). */
    ie_client_translate(m->client, PCI_BUILD_BDF(pci_bus_num(sdev->bus), sdev->devfn), addr,
                        flag & IOMMU_WO, entry);
    return true;
}

/* UNMAP events for [first, last] to the notifiers of one endpoint's region, split into the
 * naturally aligned power-of-two ranges an IOMMUTLBEntry can name. */
static void ie_viommu_notify_unmap(IOMMUMemoryRegion *mr, uint64_t first, uint64_t last)
{
    if (!(mr->iommu_notify_flags & IOMMU_NOTIFIER_UNMAP)) {
        return;
    }
    for (uint64_t start = first;;) {
        uint64_t mask = dma_aligned_pow2_mask(start, last, 64);
        IOMMUTLBEvent ev = {
            .type = IOMMU_NOTIFIER_UNMAP,
            .entry = {
                .target_as = &address_space_memory,
                .iova = start,
                .addr_mask = mask,
                .perm = IOMMU_NONE,
            },
        };
        memory_region_notify_iommu(mr, 0, ev);
        if (mask == UINT64_MAX || start + mask >= last) {
            break;
        }
        start += mask + 1;
    }
}

/*
 * Back-end thread: the daemon unmapped or detached (virtio 1.x §5.13.6.6, §5.13.6.4): drop cached
 * translations, then tell the UNMAP notifiers of the endpoint's region (devices with an IOTLB of
 * their own, such as vhost's device IOTLB, which translate on a miss) before the ack, as QEMU's
 * own virtio-iommu does on UNMAP. Endpoint ID = PCI requester ID (the virt board's VIOT).
 */
static void ie_viommu_invalidate(void *opaque, uint32_t endpoint, uint64_t iova, uint64_t size)
{
    IEViommu *m = opaque;
    uint64_t last = (size == UINT64_MAX || size == 0 || iova + size - 1 < iova) ? UINT64_MAX
                                                                             : iova + size - 1;
    GHashTableIter it;
    gpointer key, value;

    ie_client_cache_invalidate(m->client, endpoint, iova, size);
    if (size == UINT64_MAX) {
        iova = 0;
    }
    g_hash_table_iter_init(&it, m->s->as_by_busptr);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        IOMMUPciBus *bus = value;
        for (int devfn = 0; devfn < PCI_DEVFN_MAX; devfn++) {
            IOMMUDevice *sdev = bus->pbdev[devfn];
            if (sdev && (endpoint == UINT32_MAX ||
                         endpoint == PCI_BUILD_BDF(pci_bus_num(sdev->bus), sdev->devfn))) {
                ie_viommu_notify_unmap(&sdev->iommu_mr, iova, last);
            }
        }
    }
}

void iommu_emu_viommu_realize(DeviceState *dev, Error **errp)
{
    IEViommu *m = ie_viommu(dev);
    IEInfo info;

    if (!m || !m->path || (errp && *errp)) {
        return;
    }
    m->client = ie_client_connect(m->path, IE_MODEL_VIRTIO_IOMMU, &info, errp);
    if (!m->client) {
        return;
    }
    uint8_t f[8];
    if (info.model != IE_MODEL_VIRTIO_IOMMU) {
        error_setg(errp, "iommu-emu: the daemon serves model %u, not virtio-iommu", info.model);
        goto fail;
    }
    if (ie_check(ie_client_request(m->client, IE_REQ_GET_FEATURES, NULL, 0, NULL, 0, false, f, 8),
                 "GET_FEATURES", errp) ||
        ie_client_set_guest_ram(m->client, errp) ||
        ie_client_start_backend(m->client, ie_viommu_invalidate, m, errp)) {
        goto fail;
    }
    ie_client_start_ring(m->client);
    m->features = ldq_le_p(f);
    if (!(m->features & (1ull << VIRTIO_F_VERSION_1))) {
        error_setg(errp, "iommu-emu: the daemon's virtio-iommu lacks VIRTIO_F_VERSION_1");
        goto fail;
    }
    /* Every DMA goes through translate: whether an endpoint bypasses is the daemon's decision
     * (config.bypass, VIRTIO_IOMMU_F_BYPASS_CONFIG), so QEMU's own model never bypasses. */
    m->s->boot_bypass = false;
    m->s->config.bypass = 0;
    info_report("iommu-emu: virtio-iommu served by %s (profile '%s')", m->path, info.profile);
    return;
fail:
    m->client = NULL;
}
