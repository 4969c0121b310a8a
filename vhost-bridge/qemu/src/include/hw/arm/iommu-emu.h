/*
 * iommu-emu front-end for QEMU: forwards an IOMMU's behaviour to the iommu-emu daemon over the
 * iommu-emu VMM protocol (docs/protocol.md of the iommu-emu project; vhost-user framing).
 *
 * Copyright (c) 2026 The iommu-emu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef HW_ARM_IOMMU_EMU_H
#define HW_ARM_IOMMU_EMU_H

#include "exec/memory.h"
#include "qemu/thread.h"

/* docs/protocol.md §2-§5: request numbers and flags used by the front-end. */
#define IE_FLAG_VERSION        0x1u
#define IE_FLAG_REPLY          0x4u
#define IE_FLAG_NEED_REPLY     0x8u
#define IE_REQ_GET_PROTOCOL_FEATURES 15
#define IE_REQ_SET_PROTOCOL_FEATURES 16
#define IE_REQ_GET_FEATURES     1
#define IE_REQ_SET_FEATURES     2
#define IE_REQ_SET_MEM_TABLE    5
#define IE_REQ_SET_VRING_NUM    8
#define IE_REQ_SET_VRING_ADDR   9
#define IE_REQ_SET_VRING_BASE  10
#define IE_REQ_GET_VRING_BASE  11
#define IE_REQ_SET_VRING_KICK  12
#define IE_REQ_SET_VRING_CALL  13
#define IE_REQ_GET_CONFIG      24
#define IE_REQ_SET_CONFIG      25
#define IE_REQ_SET_BACKEND_REQ_FD 21
#define IE_REQ_RESET_DEVICE    34
#define IE_REQ_GET_INFO        1024
#define IE_REQ_SET_MODEL       1025
#define IE_REQ_MMIO_READ       1026
#define IE_REQ_MMIO_WRITE      1027
#define IE_REQ_TRANSLATE       1028
#define IE_REQ_SET_IRQ_FD      1030
#define IE_REQ_SET_TRANSLATE_RING 1033
#define IE_REQ_TRANSLATE_RUN   1034
#define IE_REQ_SYSTEM_RESET    1035
/* back-end channel (§5) */
#define IE_BREQ_IOTLB_INVALIDATE 1024
#define IE_BREQ_MSI              1025
#define IE_BREQ_ATC_INVALIDATE   1026
#define IE_BREQ_PRI_RESPONSE     1027
/* protocol features (§3.2) */
#define IE_PF_REPLY_ACK   (1ull << 3)
#define IE_PF_BACKEND_REQ (1ull << 5)
#define IE_PF_RESET_DEVICE (1ull << 13)
#define IE_PF_IOMMU       (1ull << 48)
/* models (§4.1) */
#define IE_MODEL_SMMUV3        1
#define IE_MODEL_VIRTIO_IOMMU  2
/* translate result status (§4.3) and perm bits (dev.iommuemu.dma.Perm) */
#define IE_XLATE_OK       0
#define IE_XLATE_ABORT    1
#define IE_XLATE_STALL    2
#define IE_PERM_R (0x1u | 0x8u)
#define IE_PERM_W (0x2u | 0x10u)
#define IE_ACCESS_WRITE 0x1u

#define IE_MAX_LINES 8
#define IE_MAX_RAM 8      /* SET_MEM_TABLE carries at most 8 regions (vhost-user) */

typedef struct IEInfo {
    uint32_t model;
    uint32_t version;
    uint64_t mmio_size;
    uint32_t nlines;
    uint32_t nqueues;
    char profile[33];
    char line_name[IE_MAX_LINES][17];
} IEInfo;

typedef struct IEClient IEClient;

/* Called on the back-end thread for IOMMU_IOTLB_INVALIDATE; must drop cached entries. */
typedef void IEInvalidateFn(void *opaque, uint32_t endpoint, uint64_t iova, uint64_t size);

struct IEClient {
    int fd;                 /* the VMM socket; requests are serialised by lock */
    QemuMutex lock;
    int backend_fd;         /* our end of the back-end channel */
    QemuThread backend_thread;
    IEInvalidateFn *invalidate;
    void *opaque;
    bool broken;            /* reported once */
    /* translation cache: entries of 4 KiB to 1 GiB, keyed by (stream, base, size) */
    QemuMutex cache_lock;
    GHashTable *cache;
    uint32_t shift_entries[31]; /* entries per log2(size), 12..30: the sizes a lookup probes */
    uint64_t generation;    /* bumped by every invalidation */
    uint64_t hits, misses, invalidations;
    uint32_t version;       /* the daemon's protocol version (IOMMU_GET_INFO) */
    uint32_t run_pages;     /* IOMMU_TRANSLATE_RUN max_pages on a miss; 0: plain IOMMU_TRANSLATE */
    struct {
        uint64_t gpa, size, uaddr;
    } ram[IE_MAX_RAM];       /* the guest RAM regions handed to the daemon */
    unsigned nram;
    /* the shared-memory translation ring (§4.5), NULL when the socket is used */
    uint8_t *ring;
    uint32_t ring_entries;
    uint32_t ring_next;      /* k: the next request number */
    int ring_doorbell;
    QemuMutex ring_lock;
};

IEClient *ie_client_connect(const char *path, uint32_t want_model, IEInfo *info, Error **errp);
/* Any request (docs/protocol.md §3-§4); 0, a negative errno (link down) or a positive one (refused). */
int ie_client_request(IEClient *c, uint32_t req, const void *payload, uint32_t size,
                      const int *fds, int nfds, bool need_ack, void *reply, uint32_t reply_size);
/* 0 for r == 0; else sets errp ("iommu-emu: <what> failed: ...") and returns -1. */
int ie_check(int r, const char *what, Error **errp);
uint64_t ie_client_gpa_to_uaddr(IEClient *c, uint64_t gpa);
int ie_client_set_guest_ram(IEClient *c, Error **errp);
int ie_client_start_backend(IEClient *c, IEInvalidateFn *fn, void *opaque, Error **errp);
/* Sets up the translation ring if IOMMU_EMU_TRANSLATE_RING=1; on refusal the socket is used. */
void ie_client_start_ring(IEClient *c);
int ie_client_set_irq_fd(IEClient *c, unsigned line, int fd, Error **errp);
int ie_client_mmio_read(IEClient *c, uint64_t offset, unsigned size, uint64_t *value);
int ie_client_mmio_write(IEClient *c, uint64_t offset, unsigned size, uint64_t value);
/* Translates through the cache; fills *entry (the cached entry's size) and returns 0, or -1 on a dead link. */
void ie_client_cache_invalidate(IEClient *c, uint32_t endpoint, uint64_t iova, uint64_t size);
int ie_client_translate(IEClient *c, uint32_t sid, uint64_t iova, bool write, IOMMUTLBEntry *entry);
/* vhost-user RESET_DEVICE (the daemon's model back to its reset state), then an empty cache. */
void ie_client_reset(IEClient *c);

/* SMMUv3 hooks (called by one-line hooks in hw/arm/smmuv3.c). */
typedef struct SMMUv3State SMMUv3State;
void iommu_emu_smmuv3_class_init(ObjectClass *klass);
void iommu_emu_smmuv3_realize(SMMUv3State *s, Error **errp);
bool iommu_emu_smmuv3_enabled(void *opaque);
MemTxResult iommu_emu_smmuv3_read(void *opaque, hwaddr offset, uint64_t *data, unsigned size);
void iommu_emu_smmuv3_reset(SMMUv3State *s);
MemTxResult iommu_emu_smmuv3_write(void *opaque, hwaddr offset, uint64_t data, unsigned size);
bool iommu_emu_smmuv3_translate(IOMMUMemoryRegion *mr, hwaddr addr, IOMMUAccessFlags flag,
                                IOMMUTLBEntry *entry);

/* virtio-iommu hooks (called by one-line hooks in hw/virtio/virtio-iommu.c). */
void iommu_emu_viommu_class_init(ObjectClass *klass);
void iommu_emu_viommu_realize(DeviceState *dev, Error **errp);
void iommu_emu_viommu_system_reset(DeviceState *dev);
bool iommu_emu_viommu_translate(IOMMUMemoryRegion *mr, hwaddr addr, IOMMUAccessFlags flag,
                                IOMMUTLBEntry *entry);

#endif
