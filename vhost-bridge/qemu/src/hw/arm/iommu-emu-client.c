/*
 * iommu-emu front-end: the client side of the iommu-emu VMM protocol (docs/protocol.md):
 * blocking request/reply on a unix socket, guest RAM handed over as a memfd, a back-end channel
 * served on a thread of its own, and a per-(stream, page) translation cache.
 *
 * Threads: requests come from vCPU threads (MMIO) and from whichever thread does DMA (translate);
 * one mutex serialises each request with its reply. Invalidations arrive on the back-end channel
 * while a vCPU may be blocked in a request that caused them (CMD_SYNC), so that channel is read
 * by a thread that never takes the BQL.
 *
 * Copyright (c) 2026 The iommu-emu authors
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qapi/error.h"
#include "exec/address-spaces.h"
#include "hw/boards.h"
#include "hw/arm/iommu-emu.h"
#include "qemu/atomic.h"
#include "qemu/memfd.h"
#include "qemu/processor.h"
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <sys/eventfd.h>

#define IE_HDR 12
#define IE_PAGE 4096ull
#define IE_MIN_SHIFT 12          /* cached entries: 4 KiB ... */
#define IE_MAX_SHIFT 30          /* ... to 1 GiB (a larger entry is cached as its 1 GiB block) */
#define IE_CACHE_MAX 65536       /* entries; beyond, the cache starts over */
#define IE_RUN_PAGES 32          /* IOMMU_TRANSLATE_RUN max_pages (IOMMU_EMU_PREFETCH_PAGES) */
#define IE_RUN_MAX_ENTRIES 64    /* docs/protocol.md §4.3 */
#define IE_RUN_REPLY_MAX (64 + 8 + 32 * IE_RUN_MAX_ENTRIES)

typedef struct IECacheKey {
    uint32_t sid;
    uint32_t shift;          /* log2 of the entry's size */
    uint64_t base;           /* input address, aligned to the size */
} IECacheKey;

typedef struct IECacheVal {
    uint64_t out_base;
    uint32_t perm;
} IECacheVal;

static guint ie_key_hash(gconstpointer k)
{
    const IECacheKey *key = k;
    return g_int64_hash(&key->base) ^ (key->sid * 0x9e3779b1u) ^ key->shift;
}

static gboolean ie_key_equal(gconstpointer a, gconstpointer b)
{
    const IECacheKey *x = a, *y = b;
    return x->sid == y->sid && x->shift == y->shift && x->base == y->base;
}

/* --- framing (docs/protocol.md §2) ------------------------------------------------------------ */

static int ie_write_all(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
    const uint8_t *p = buf;
    bool fds_sent = false;
    while (len > 0) {
        struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        char control[CMSG_SPACE(sizeof(int) * 8)];
        if (nfds > 0 && !fds_sent) {
            memset(control, 0, sizeof(control));
            msg.msg_control = control;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        fds_sent = true;
        p += n;
        len -= n;
    }
    return 0;
}

static int ie_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        p += n;
        len -= n;
    }
    return 0;
}

static int ie_send(int fd, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
                   const int *fds, int nfds)
{
    uint8_t buf[IE_HDR + 512];
    if (size > sizeof(buf) - IE_HDR) {
        return -EINVAL;
    }
    stl_le_p(buf, req);
    stl_le_p(buf + 4, flags);
    stl_le_p(buf + 8, size);
    if (size) {
        memcpy(buf + IE_HDR, payload, size);
    }
    return ie_write_all(fd, buf, IE_HDR + size, fds, nfds);
}

/* A transport failure on request req: reported once, and the link is dead from then on. */
static int ie_dead(IEClient *c, uint32_t req, int r)
{
    if (!c->broken) {
        error_report("iommu-emu: connection to the daemon failed on request %u: %s", req,
                     strerror(-r));
        c->broken = true;
    }
    return r;
}

/*
 * One request; if reply != NULL waits for its reply of exactly reply_size bytes (an 8-byte reply
 * of another size is an error reply: §6). need_ack asks for a REPLY_ACK u64 (reply must be NULL).
 * Returns 0, a negative errno for a transport failure, or a positive errno refused by the daemon.
 */
static int ie_call_locked(IEClient *c, uint32_t req, const void *payload, uint32_t size,
                          const int *fds, int nfds, bool need_ack, void *reply, uint32_t reply_size)
{
    uint8_t hdr[IE_HDR];
    uint8_t ack[8];
    int r;

    if (c->broken) {
        return -ECONNRESET;
    }
    r = ie_send(c->fd, req, IE_FLAG_VERSION | (need_ack ? IE_FLAG_NEED_REPLY : 0), payload, size,
                fds, nfds);
    if (r < 0) {
        goto dead;
    }
    if (!reply && !need_ack) {
        return 0;
    }
    r = ie_read_all(c->fd, hdr, IE_HDR);
    if (r < 0) {
        goto dead;
    }
    uint32_t rreq = ldl_le_p(hdr), rflags = ldl_le_p(hdr + 4), rsize = ldl_le_p(hdr + 8);
    if (rreq != req || rflags != (IE_FLAG_VERSION | IE_FLAG_REPLY)) {
        r = -EPROTO;
        goto dead;
    }
    if (need_ack || (rsize == 8 && reply_size != 8)) {
        if (rsize != 8 || (r = ie_read_all(c->fd, ack, 8)) < 0) {
            r = r < 0 ? r : -EPROTO;
            goto dead;
        }
        return (int)ldq_le_p(ack);
    }
    if (rsize != reply_size) {
        r = -EPROTO;
        goto dead;
    }
    r = ie_read_all(c->fd, reply, rsize);
    if (r < 0) {
        goto dead;
    }
    return 0;
dead:
    return ie_dead(c, req, r);
}

/*
 * A request whose reply has a size of its own, between min and max bytes (IOMMU_TRANSLATE_RUN):
 * the size read goes to *len. Returns as ie_call_locked.
 */
static int ie_call_var_locked(IEClient *c, uint32_t req, const void *payload, uint32_t size,
                              void *reply, uint32_t min, uint32_t max, uint32_t *len)
{
    uint8_t hdr[IE_HDR];
    int r;

    if (c->broken) {
        return -ECONNRESET;
    }
    r = ie_send(c->fd, req, IE_FLAG_VERSION, payload, size, NULL, 0);
    if (r == 0) {
        r = ie_read_all(c->fd, hdr, IE_HDR);
    }
    if (r < 0) {
        goto dead;
    }
    uint32_t rsize = ldl_le_p(hdr + 8);
    if (ldl_le_p(hdr) != req || ldl_le_p(hdr + 4) != (IE_FLAG_VERSION | IE_FLAG_REPLY) ||
        (rsize != 8 && (rsize < min || rsize > max))) {
        r = -EPROTO;
        goto dead;
    }
    if ((r = ie_read_all(c->fd, reply, rsize)) < 0) {
        goto dead;
    }
    if (rsize == 8) {
        return (int)ldq_le_p(reply); /* refused (§6) */
    }
    *len = rsize;
    return 0;
dead:
    return ie_dead(c, req, r);
}

static int ie_call(IEClient *c, uint32_t req, const void *payload, uint32_t size, const int *fds,
                   int nfds, bool need_ack, void *reply, uint32_t reply_size)
{
    qemu_mutex_lock(&c->lock);
    int r = ie_call_locked(c, req, payload, size, fds, nfds, need_ack, reply, reply_size);
    qemu_mutex_unlock(&c->lock);
    return r;
}

int ie_client_request(IEClient *c, uint32_t req, const void *payload, uint32_t size,
                      const int *fds, int nfds, bool need_ack, void *reply, uint32_t reply_size)
{
    return ie_call(c, req, payload, size, fds, nfds, need_ack, reply, reply_size);
}

uint64_t ie_client_gpa_to_uaddr(IEClient *c, uint64_t gpa)
{
    for (unsigned i = 0; i < c->nram; i++) {
        if (gpa >= c->ram[i].gpa && gpa - c->ram[i].gpa < c->ram[i].size) {
            return gpa - c->ram[i].gpa + c->ram[i].uaddr;
        }
    }
    return 0; /* not guest RAM: the daemon refuses a ring there */
}

int ie_check(int r, const char *what, Error **errp)
{
    if (r != 0) {
        error_setg(errp, "iommu-emu: %s failed: %s", what, strerror(r < 0 ? -r : r));
        return -1;
    }
    return 0;
}

/* §4.1 IOMMU_GET_INFO: {u32 model, u32 version, u64 mmio size, u32 nlines, u32 nqueues,
 * char profile[32], char line_name[nlines][16]}. */
static int ie_get_info(IEClient *c, IEInfo *info, Error **errp)
{
    uint8_t hdr[IE_HDR] = { 0 }, buf[56 + 16 * 32];
    int r;

    qemu_mutex_lock(&c->lock);
    r = ie_send(c->fd, IE_REQ_GET_INFO, IE_FLAG_VERSION, NULL, 0, NULL, 0);
    if (r == 0) {
        r = ie_read_all(c->fd, hdr, IE_HDR);
    }
    uint32_t rsize = ldl_le_p(hdr + 8);
    if (r == 0 && (ldl_le_p(hdr) != IE_REQ_GET_INFO || rsize < 56 || rsize > sizeof(buf))) {
        r = -EPROTO;
    }
    if (r == 0) {
        r = ie_read_all(c->fd, buf, rsize);
    }
    qemu_mutex_unlock(&c->lock);
    if (ie_check(r, "IOMMU_GET_INFO", errp)) {
        return -1;
    }
    memset(info, 0, sizeof(*info));
    info->model = ldl_le_p(buf);
    info->version = ldl_le_p(buf + 4);
    info->mmio_size = ldq_le_p(buf + 8);
    info->nlines = MIN(ldl_le_p(buf + 16), IE_MAX_LINES);
    info->nqueues = ldl_le_p(buf + 20);
    memcpy(info->profile, buf + 24, 32);
    for (unsigned i = 0; i < info->nlines && 56 + 16 * (i + 1) <= rsize; i++) {
        memcpy(info->line_name[i], buf + 56 + 16 * i, 16);
    }
    return 0;
}

IEClient *ie_client_connect(const char *path, uint32_t want_model, IEInfo *info, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    uint8_t u64[8];
    uint8_t feat[8];

    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "iommu-emu: socket path too long: %s", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "iommu-emu: cannot connect to the daemon at %s", path);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    IEClient *c = g_new0(IEClient, 1);
    c->fd = fd;
    c->backend_fd = -1;
    qemu_mutex_init(&c->lock);
    qemu_mutex_init(&c->cache_lock);
    c->cache = g_hash_table_new_full(ie_key_hash, ie_key_equal, g_free, g_free);

    /* §3.2: the IOMMU range needs protocol feature 48; we use REPLY_ACK, BACKEND_REQ and
     * RESET_DEVICE too. */
    if (ie_check(ie_call(c, IE_REQ_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0, false, feat, 8),
                 "GET_PROTOCOL_FEATURES", errp)) {
        goto fail;
    }
    uint64_t want = IE_PF_REPLY_ACK | IE_PF_BACKEND_REQ | IE_PF_RESET_DEVICE | IE_PF_IOMMU;
    if ((ldq_le_p(feat) & want) != want) {
        error_setg(errp, "iommu-emu: the daemon at %s does not offer protocol features 0x%" PRIx64,
                   path, want & ~ldq_le_p(feat));
        goto fail;
    }
    stq_le_p(u64, want);
    if (ie_check(ie_call(c, IE_REQ_SET_PROTOCOL_FEATURES, u64, 8, NULL, 0, true, NULL, 0),
                 "SET_PROTOCOL_FEATURES", errp) || ie_get_info(c, info, errp)) {
        goto fail;
    }
    c->version = info->version;
    if (info->model != want_model) {
        /* §4.1 IOMMU_SET_MODEL {u32 model, u32 reserved, char profile[32]}: the default profile. */
        uint8_t sel[40] = { 0 };
        stl_le_p(sel, want_model);
        if (ie_check(ie_call(c, IE_REQ_SET_MODEL, sel, sizeof(sel), NULL, 0, true, NULL, 0),
                     "IOMMU_SET_MODEL", errp) || ie_get_info(c, info, errp)) {
            goto fail;
        }
    }
    /* §4.3 IOMMU_TRANSLATE_RUN (version 6): a miss also fetches the pages after it. */
    const char *pf = getenv("IOMMU_EMU_PREFETCH_PAGES");
    c->run_pages = info->version >= 6 ? (pf ? (uint32_t)MIN(strtoul(pf, NULL, 0), 1024) : IE_RUN_PAGES) : 0;
    return c;
fail:
    close(fd);
    g_hash_table_destroy(c->cache);
    g_free(c);
    return NULL;
}

/*
 * §3.1: guest RAM as regions {gpa, size, userspace_addr, mmap_offset} with their memfds: the
 * machine's RAM (memory-backend=), or each NUMA node's memory backend when -numa node,memdev=
 * makes the machine's RAM a container of them.
 */
int ie_client_set_guest_ram(IEClient *c, Error **errp)
{
    MemoryRegion *ram = current_machine ? current_machine->ram : NULL;
    MemoryRegion *parts[IE_MAX_RAM];
    uint64_t base[IE_MAX_RAM];
    int fds[IE_MAX_RAM];
    unsigned n = 0;
    uint8_t p[8 + 32 * IE_MAX_RAM] = { 0 };

    /* memory_region_get_fd() needs a RAM region (a container has no RAMBlock) */
    if (ram && memory_region_is_ram(ram) && memory_region_get_fd(ram) >= 0) {
        parts[n] = ram;
        base[n++] = ram->addr;
    } else if (ram) {
        MemoryRegion *sub;
        QTAILQ_FOREACH(sub, &ram->subregions, subregions_link) {
            if (n == IE_MAX_RAM || !memory_region_is_ram(sub) || memory_region_get_fd(sub) < 0) {
                n = 0; /* not every part is shareable, or too many: refuse below */
                break;
            }
            parts[n] = sub;
            base[n++] = ram->addr + sub->addr;
        }
    }
    if (n == 0) {
        error_setg(errp, "iommu-emu: guest RAM must be shared with the daemon: use "
                   "-object memory-backend-memfd,id=mem,size=<RAM>,share=on "
                   "-machine memory-backend=mem (or memfd backends with share=on for every "
                   "-numa node,memdev=, at most %d)", IE_MAX_RAM);
        return -1;
    }
    stl_le_p(p, n);
    for (unsigned i = 0; i < n; i++) {
        c->ram[i].gpa = base[i];
        c->ram[i].size = memory_region_size(parts[i]);
        c->ram[i].uaddr = (uintptr_t)memory_region_get_ram_ptr(parts[i]);
        fds[i] = memory_region_get_fd(parts[i]);
        stq_le_p(p + 8 + 32 * i, c->ram[i].gpa);
        stq_le_p(p + 16 + 32 * i, c->ram[i].size);
        stq_le_p(p + 24 + 32 * i, c->ram[i].uaddr);
        stq_le_p(p + 32 + 32 * i, 0); /* a memfd backend maps its fd from offset 0 */
    }
    c->nram = n;
    return ie_check(ie_call(c, IE_REQ_SET_MEM_TABLE, p, 8 + 32 * n, fds, n, true, NULL, 0),
                    "SET_MEM_TABLE", errp);
}

int ie_client_set_irq_fd(IEClient *c, unsigned line, int fd, Error **errp)
{
    uint8_t u64[8];
    stq_le_p(u64, line);
    return ie_check(ie_call(c, IE_REQ_SET_IRQ_FD, u64, 8, &fd, 1, true, NULL, 0),
                    "IOMMU_SET_IRQ_FD", errp);
}

/* --- back-end channel (§5) ---------------------------------------------------------------- */

typedef struct IEMsi {
    uint64_t address;
    uint32_t data;
} IEMsi;

static void ie_deliver_msi(void *opaque)
{
    IEMsi *m = opaque;
    address_space_stl_le(&address_space_memory, m->address, m->data, MEMTXATTRS_UNSPECIFIED, NULL);
    g_free(m);
}

static void *ie_backend_thread(void *opaque)
{
    IEClient *c = opaque;
    uint8_t hdr[IE_HDR], p[256], ack[8] = { 0 };

    for (;;) {
        if (ie_read_all(c->backend_fd, hdr, IE_HDR) < 0) {
            break;
        }
        uint32_t req = ldl_le_p(hdr), flags = ldl_le_p(hdr + 4), size = ldl_le_p(hdr + 8);
        if (size > sizeof(p) || ie_read_all(c->backend_fd, p, size) < 0) {
            break;
        }
        switch (req) {
        case IE_BREQ_IOTLB_INVALIDATE:
            /* {u32 endpoint, u32 flags, u64 iova, u64 size}: drop, then acknowledge. */
            if (size >= 24) {
                c->invalidate(c->opaque, ldl_le_p(p), ldq_le_p(p + 8), ldq_le_p(p + 16));
            }
            break;
        case IE_BREQ_MSI:
            if (size >= 12) {
                IEMsi *m = g_new(IEMsi, 1);
                m->address = ldq_le_p(p);
                m->data = ldl_le_p(p + 8);
                aio_bh_schedule_oneshot(qemu_get_aio_context(), ie_deliver_msi, m);
            }
            break;
        default:
            /* ATC invalidation: our endpoints have no ATC. PRI responses: no PRI endpoints. */
            break;
        }
        if (flags & IE_FLAG_NEED_REPLY) {
            if (ie_send(c->backend_fd, req, IE_FLAG_VERSION | IE_FLAG_REPLY, ack, 8, NULL, 0) < 0) {
                break;
            }
        }
    }
    error_report("iommu-emu: back-end channel closed");
    return NULL;
}

int ie_client_start_backend(IEClient *c, IEInvalidateFn *fn, void *opaque, Error **errp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        error_setg_errno(errp, errno, "iommu-emu: socketpair");
        return -1;
    }
    c->invalidate = fn;
    c->opaque = opaque;
    c->backend_fd = sv[0];
    int r = ie_call(c, IE_REQ_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1, true, NULL, 0);
    close(sv[1]);
    if (ie_check(r, "SET_BACKEND_REQ_FD", errp)) {
        return -1;
    }
    qemu_thread_create(&c->backend_thread, "iommu-emu-be", ie_backend_thread, c,
                       QEMU_THREAD_DETACHED);
    return 0;
}

/* --- MMIO (§4.2) ------------------------------------------------------------------------------ */

int ie_client_mmio_read(IEClient *c, uint64_t offset, unsigned size, uint64_t *value)
{
    uint8_t p[16] = { 0 }, r[16];
    stq_le_p(p, offset);
    stl_le_p(p + 8, size);
    int e = ie_call(c, IE_REQ_MMIO_READ, p, 16, NULL, 0, false, r, 16);
    *value = e == 0 && ldl_le_p(r) == 0 ? ldq_le_p(r + 8) : 0;
    return e;
}

int ie_client_mmio_write(IEClient *c, uint64_t offset, unsigned size, uint64_t value)
{
    uint8_t p[24] = { 0 };
    stq_le_p(p, offset);
    stl_le_p(p + 8, size);
    stq_le_p(p + 16, value);
    /* Posted (§4.2): later requests on this connection are ordered after its side effects. */
    return ie_call(c, IE_REQ_MMIO_WRITE, p, 24, NULL, 0, false, NULL, 0);
}

/* --- translation (§4.3) with the per-(stream, page) cache ------------------------------------- */

static IOMMUAccessFlags ie_perm(uint32_t perm)
{
    return ((perm & IE_PERM_R) ? IOMMU_RO : 0) | ((perm & IE_PERM_W) ? IOMMU_WO : 0);
}

/* --- the shared-memory translation ring (§4.5) --------------------------------------------- */

#define IE_RING_ENTRIES 64
#define IE_RING_HEADER 64
#define IE_RING_SLOT 64
#define IE_RING_TIMEOUT_US (5 * 1000 * 1000)

void ie_client_start_ring(IEClient *c)
{
    const char *env = getenv("IOMMU_EMU_TRANSLATE_RING");
    size_t len = IE_RING_HEADER + IE_RING_SLOT * IE_RING_ENTRIES;
    uint8_t p[8] = { 0 };
    int fds[2];

    /* Opt-in: both sides spin, which on a small busy host costs more than the socket saves
     * (BENCHMARKS.md, "Guest boots"). */
    if (!env || strcmp(env, "1")) {
        return;
    }
    fds[0] = memfd_create("iommu-emu-ring", MFD_CLOEXEC);
    fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fds[0] < 0 || fds[1] < 0 || ftruncate(fds[0], len) < 0) {
        goto fail;
    }
    void *ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    if (ring == MAP_FAILED) {
        goto fail;
    }
    stl_le_p(p, IE_RING_ENTRIES);
    if (ie_call(c, IE_REQ_SET_TRANSLATE_RING, p, 8, fds, 2, true, NULL, 0) != 0) {
        munmap(ring, len);
        goto fail;
    }
    close(fds[0]);
    qemu_mutex_init(&c->ring_lock);
    c->ring_entries = IE_RING_ENTRIES;
    c->ring_doorbell = fds[1];
    c->ring = ring;
    return;
fail:
    warn_report("iommu-emu: no shared-memory translation ring; translating over the socket");
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

/* One request through the ring: r receives the 32-byte translate result. 0 or -1 (daemon gone). */
static int ie_ring_translate(IEClient *c, const uint8_t req[24], uint8_t r[32])
{
    qemu_mutex_lock(&c->ring_lock);
    uint32_t k = c->ring_next++;
    uint8_t *slot = c->ring + IE_RING_HEADER + IE_RING_SLOT * (k & (c->ring_entries - 1));
    uint32_t *seq = (uint32_t *)slot, *sleeping = (uint32_t *)c->ring;
    int64_t deadline = 0;

    memcpy(slot + 8, req, 24);
    qatomic_store_release(seq, 2 * k + 1);
    smp_mb();
    if (qatomic_read(sleeping)) {
        uint64_t one = 1;
        if (write(c->ring_doorbell, &one, 8) < 0) {
            /* EAGAIN: the counter is already non-zero, the back-end will wake */
        }
    }
    for (unsigned spins = 0; qatomic_load_acquire(seq) != 2 * k + 2; spins++) {
        if ((spins & 1023) == 1023) {
            int64_t now = g_get_monotonic_time();
            if (!deadline) {
                deadline = now + IE_RING_TIMEOUT_US;
            } else if (now > deadline) {
                error_report("iommu-emu: the daemon does not serve the translation ring");
                c->broken = true;
                qemu_mutex_unlock(&c->ring_lock);
                return -1;
            }
            sched_yield();
        }
        cpu_relax();
    }
    memcpy(r, slot + 32, 32);
    qemu_mutex_unlock(&c->ring_lock);
    return 0;
}

/* Caller holds cache_lock. The entry of (sid, addr) of any cached size, or NULL. */
static IECacheVal *ie_cache_find(IEClient *c, uint32_t sid, uint64_t addr, unsigned *shift)
{
    for (unsigned s = IE_MIN_SHIFT; s <= IE_MAX_SHIFT; s++) {
        if (!c->shift_entries[s]) {
            continue;
        }
        IECacheKey key = { .sid = sid, .shift = s, .base = addr & ~((1ull << s) - 1) };
        IECacheVal *v = g_hash_table_lookup(c->cache, &key);
        if (v) {
            *shift = s;
            return v;
        }
    }
    return NULL;
}

static void ie_cache_clear_locked(IEClient *c)
{
    g_hash_table_remove_all(c->cache);
    memset(c->shift_entries, 0, sizeof(c->shift_entries));
}

/*
 * Caller holds cache_lock. Caches [iova & ~mask, | mask] -> out & ~mask (a translated result or a
 * run entry, §4.3); an entry above 1 GiB is cached as the 1 GiB block holding iova, one below
 * 4 KiB not at all. Returns the size's log2, or 0 if not cached.
 */
static unsigned ie_cache_insert(IEClient *c, uint32_t sid, uint64_t iova, uint64_t out, uint64_t mask,
                                uint32_t perm)
{
    if (mask < IE_PAGE - 1 || (mask & (mask + 1)) != 0) {
        return 0;
    }
    unsigned shift = mask == UINT64_MAX ? 64 : ctz64(mask + 1);
    if (shift > IE_MAX_SHIFT) {
        shift = IE_MAX_SHIFT;
    }
    uint64_t m = (1ull << shift) - 1;
    if (g_hash_table_size(c->cache) >= IE_CACHE_MAX) {
        ie_cache_clear_locked(c); /* bounded: start over rather than grow */
    }
    IECacheKey *k = g_new(IECacheKey, 1);
    IECacheVal *v = g_new(IECacheVal, 1);
    k->sid = sid;
    k->shift = shift;
    k->base = iova & ~m;
    /* the 1 GiB block of a larger entry: its output is the larger entry's output at that offset */
    v->out_base = (out & ~mask) | (iova & mask & ~m);
    v->perm = perm;
    if (!g_hash_table_contains(c->cache, k)) {
        c->shift_entries[shift]++;
    }
    g_hash_table_replace(c->cache, k, v);
    return shift;
}

static void ie_fill(IOMMUTLBEntry *e, uint64_t iova, uint64_t out_base, unsigned shift, uint32_t perm)
{
    uint64_t m = (1ull << shift) - 1;
    e->iova = iova & ~m;
    e->translated_addr = out_base;
    e->addr_mask = m;
    e->perm = ie_perm(perm);
}

int ie_client_translate(IEClient *c, uint32_t sid, uint64_t iova, bool write, IOMMUTLBEntry *e)
{
    IOMMUAccessFlags need = write ? IOMMU_WO : IOMMU_RO;
    uint8_t p[32] = { 0 }, r[IE_RUN_REPLY_MAX];
    uint32_t rlen = 64, count = 0;
    unsigned shift;

    e->target_as = &address_space_memory;
    e->iova = iova & ~(IE_PAGE - 1);
    e->addr_mask = IE_PAGE - 1;
    e->translated_addr = 0;
    e->perm = IOMMU_NONE;

    qemu_mutex_lock(&c->cache_lock);
    IECacheVal *hit = ie_cache_find(c, sid, iova, &shift);
    if (hit && (ie_perm(hit->perm) & need) == need) {
        ie_fill(e, iova, hit->out_base, shift, hit->perm);
        c->hits++;
        qemu_mutex_unlock(&c->cache_lock);
        return 0;
    }
    uint64_t gen = c->generation;
    c->misses++;
    qemu_mutex_unlock(&c->cache_lock);

    stl_le_p(p, sid);
    stl_le_p(p + 4, 0xffffffffu);
    stq_le_p(p + 8, iova);
    stl_le_p(p + 16, write ? IE_ACCESS_WRITE : 0);
    int err;
    if (c->ring && !c->broken) {
        err = ie_ring_translate(c, p, r);
    } else if (c->run_pages) {
        /* §4.3 IOMMU_TRANSLATE_RUN: this page, and entries for the pages after it */
        stl_le_p(p + 24, c->run_pages);
        qemu_mutex_lock(&c->lock);
        err = ie_call_var_locked(c, IE_REQ_TRANSLATE_RUN, p, 32, r, 72, IE_RUN_REPLY_MAX, &rlen);
        qemu_mutex_unlock(&c->lock);
        if (err > 0) {
            c->run_pages = 0; /* refused: plain translations from now on */
            err = ie_call(c, IE_REQ_TRANSLATE, p, 24, NULL, 0, false, r, 64);
        } else if (err == 0) {
            count = ldl_le_p(r + 64);
            if (count > IE_RUN_MAX_ENTRIES || rlen != 72 + 32 * count) {
                count = 0;
            }
        }
    } else {
        err = ie_call(c, IE_REQ_TRANSLATE, p, 24, NULL, 0, false, r, 64);
    }
    if (err != 0) {
        return -1;
    }
    uint32_t status = ldl_le_p(r), perm = ldl_le_p(r + 4);
    uint64_t out = ldq_le_p(r + 8), mask = ldq_le_p(r + 16);
    if (status != IE_XLATE_OK) {
        return 0; /* aborted (the daemon recorded the fault) or stalled: no access */
    }
    if (mask < IE_PAGE - 1) {
        e->iova = iova;        /* a sub-page entry: exact, not cached */
        e->translated_addr = out;
        e->addr_mask = 0;
        e->perm = ie_perm(perm);
        return 0;
    }
    qemu_mutex_lock(&c->cache_lock);
    if (c->generation == gen) { /* no invalidation raced with this translation */
        shift = ie_cache_insert(c, sid, iova, out, mask, perm);
        for (uint32_t i = 0; i < count; i++) {
            const uint8_t *en = r + 72 + 32 * i;
            ie_cache_insert(c, sid, ldq_le_p(en), ldq_le_p(en + 8), ldq_le_p(en + 16),
                            ldl_le_p(en + 24));
        }
    } else {
        shift = IE_MIN_SHIFT;
    }
    qemu_mutex_unlock(&c->cache_lock);
    shift = MIN(MAX(shift, IE_MIN_SHIFT), IE_MAX_SHIFT);
    uint64_t m = (1ull << shift) - 1;
    ie_fill(e, iova, (out & ~mask) | (iova & mask & ~m), shift, perm);
    return 0;
}

void ie_client_reset(IEClient *c)
{
    /* docs/protocol.md §3: RESET_DEVICE stops the rings and resets the model; its ack orders it
     * before any later request. */
    if (ie_call(c, IE_REQ_RESET_DEVICE, NULL, 0, NULL, 0, true, NULL, 0) != 0) {
        warn_report("iommu-emu: the daemon did not reset its model");
    }
    ie_client_cache_invalidate(c, UINT32_MAX, 0, UINT64_MAX);
}

typedef struct IEInvRange {
    uint32_t endpoint;
    uint64_t first, last;
    IEClient *c;
} IEInvRange;

static gboolean ie_inv_match(gpointer k, gpointer v, gpointer opaque)
{
    const IECacheKey *key = k;
    const IEInvRange *r = opaque;
    uint64_t end = key->base + ((1ull << key->shift) - 1);
    if ((r->endpoint == UINT32_MAX || r->endpoint == key->sid) && end >= r->first &&
        key->base <= r->last) {
        r->c->shift_entries[key->shift]--;
        return TRUE;
    }
    return FALSE;
}

/* §5 IOMMU_IOTLB_INVALIDATE: endpoint 0xffffffff = all, size ~0 = everything. */
void ie_client_cache_invalidate(IEClient *c, uint32_t endpoint, uint64_t iova, uint64_t size)
{
    IEInvRange r = { .endpoint = endpoint, .first = iova, .c = c };
    r.last = (size == UINT64_MAX || size == 0 || iova + size - 1 < iova) ? UINT64_MAX
                                                                          : iova + size - 1;
    if (size == UINT64_MAX) {
        r.first = 0;
    }
    qemu_mutex_lock(&c->cache_lock);
    c->generation++;
    c->invalidations++;
    /* A small range of one endpoint: look up its possible entries of each cached size rather
     * than scan the whole cache (strict-mode guests invalidate every buffer they unmap). */
    uint64_t probes = 0;
    for (unsigned s = IE_MIN_SHIFT; s <= IE_MAX_SHIFT && endpoint != UINT32_MAX; s++) {
        if (c->shift_entries[s]) {
            probes += ((r.last >> s) - (r.first >> s)) + 1;
        }
    }
    if (endpoint != UINT32_MAX && r.last != UINT64_MAX && probes <= 1024 &&
        probes < g_hash_table_size(c->cache)) {
        for (unsigned s = IE_MIN_SHIFT; s <= IE_MAX_SHIFT; s++) {
            for (uint64_t b = r.first >> s; c->shift_entries[s] && b <= (r.last >> s); b++) {
                IECacheKey key = { .sid = endpoint, .shift = s, .base = b << s };
                if (g_hash_table_remove(c->cache, &key)) {
                    c->shift_entries[s]--;
                }
            }
        }
    } else {
        g_hash_table_foreach_remove(c->cache, ie_inv_match, &r);
    }
    qemu_mutex_unlock(&c->cache_lock);
}
