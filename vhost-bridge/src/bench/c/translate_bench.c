/*
 * translate_bench: the IOMMU_TRANSLATE exchange of docs/protocol.md, measured in C.
 *
 *   translate_bench server PATH            a minimal C back-end answering IOMMU_TRANSLATE (identity)
 *   translate_bench rtt PATH N             N round trips of IOMMU_TRANSLATE; prints median/p99 in us
 *   translate_bench batch PATH SECONDS B   IOMMU_TRANSLATE_BATCH of B for SECONDS; prints translations/s
 *   translate_bench ring PATH N            N round trips through the shared-memory translation ring
 *                                          (IOMMU_SET_TRANSLATE_RING, docs/protocol.md 4.5)
 *
 * The same client runs against the C server and the Java daemon, so the two figures differ only by
 * the server. Written for BENCHMARKS.md ("daemon"); bin/bench-daemon builds and runs it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IOMMU_TRANSLATE 1028
#define IOMMU_TRANSLATE_BATCH 1029
#define HDR 12
#define REQ 24
#define RES 32
#define MAXB 1024

static int read_full(int fd, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, (const char *)buf + done, n - done);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

static int unix_connect(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static int server(const char *path) {
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
    unlink(path);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0) {
        perror("bind");
        return 1;
    }
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        static uint8_t in[HDR + 8 + MAXB * REQ], out[HDR + 8 + MAXB * RES];
        for (;;) {
            if (read_full(c, in, HDR) < 0) break;
            uint32_t req = get32(in), size = get32(in + 8);
            if (size > sizeof(in) - HDR || read_full(c, in + HDR, size) < 0) break;
            size_t n;
            if (req == IOMMU_TRANSLATE) {
                /* identity translation, 4 KiB page, all permissions: as the daemon's identity model */
                uint64_t iova = get64(in + HDR + 8);
                memset(out + HDR, 0, 64);
                put32(out + HDR, 0);
                put32(out + HDR + 4, 0x3f);
                put64(out + HDR + 8, iova);
                put64(out + HDR + 16, 0xfff);
                n = 64;
            } else if (req == IOMMU_TRANSLATE_BATCH) {
                uint32_t cnt = get32(in + HDR);
                memset(out + HDR, 0, 8 + (size_t)cnt * RES);
                put32(out + HDR, cnt);
                for (uint32_t i = 0; i < cnt; i++) {
                    uint8_t *r = out + HDR + 8 + (size_t)i * RES;
                    put32(r + 4, 0x3f);
                    put64(r + 8, get64(in + HDR + 8 + (size_t)i * REQ + 8));
                    put64(r + 16, 0xfff);
                }
                n = 8 + (size_t)cnt * RES;
            } else {
                break;
            }
            put32(out, req);
            put32(out + 4, 5);
            put32(out + 8, (uint32_t)n);
            if (write_full(c, out, HDR + n) < 0) break;
        }
        close(c);
    }
}

static void translate_req(uint8_t *p, uint32_t sid, uint64_t iova) {
    memset(p, 0, REQ);
    put32(p, sid);
    put32(p + 4, 0xffffffffu);
    put64(p + 8, iova);
}

static int rtt(const char *path, long n) {
    int fd = unix_connect(path);
    uint8_t msg[HDR + REQ], rep[HDR + 64];
    put32(msg, IOMMU_TRANSLATE);
    put32(msg + 4, 1);
    put32(msg + 8, REQ);
    double *t = malloc(sizeof(double) * (size_t)n);
    long warm = n / 10 + 1000;
    for (long i = -warm; i < n; i++) {
        translate_req(msg + HDR, 1, 0x10000000ull + ((uint64_t)(i & 0xffff) << 12) + 0x10);
        double t0 = now_us();
        if (write_full(fd, msg, sizeof(msg)) < 0 || read_full(fd, rep, HDR) < 0) return 1;
        uint32_t size = get32(rep + 8);
        if (size != 64 || read_full(fd, rep + HDR, size) < 0) {
            fprintf(stderr, "bad reply size %u\n", size);
            return 1;
        }
        double t1 = now_us();
        if (get64(rep + HDR + 8) != 0x10000000ull + ((uint64_t)(i & 0xffff) << 12) + 0x10) {
            fprintf(stderr, "wrong translation\n");
            return 1;
        }
        if (i >= 0) t[i] = t1 - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp);
    printf("rtt n=%ld median_us=%.2f p99_us=%.2f\n", n, t[n / 2], t[(long)(n * 0.99)]);
    return 0;
}

static int batch(const char *path, double seconds, int b) {
    int fd = unix_connect(path);
    static uint8_t msg[HDR + 8 + MAXB * REQ], rep[HDR + 8 + MAXB * RES];
    size_t size = 8 + (size_t)b * REQ;
    put32(msg, IOMMU_TRANSLATE_BATCH);
    put32(msg + 4, 1);
    put32(msg + 8, (uint32_t)size);
    put32(msg + HDR, (uint32_t)b);
    for (int i = 0; i < b; i++) translate_req(msg + HDR + 8 + (size_t)i * REQ, 1, 0x20000000ull + ((uint64_t)i << 12));
    long total = 0;
    double start = now_us(), warm_end = start + 1e6; /* one second of warm-up */
    int warm = 1;
    for (;;) {
        if (write_full(fd, msg, HDR + size) < 0 || read_full(fd, rep, HDR) < 0) return 1;
        uint32_t rs = get32(rep + 8);
        if (rs != 8 + (uint32_t)b * RES || read_full(fd, rep + HDR, rs) < 0) {
            fprintf(stderr, "bad batch reply size %u\n", rs);
            return 1;
        }
        double t = now_us();
        if (warm) {
            if (t >= warm_end) { warm = 0; start = t; total = 0; }
            continue;
        }
        total += b;
        if (t - start >= seconds * 1e6) {
            printf("batch b=%d translations=%ld seconds=%.2f per_second=%.0f\n", b, total, (t - start) / 1e6, total / ((t - start) / 1e6));
            return 0;
        }
    }
}

#define IOMMU_SET_TRANSLATE_RING 1033
#define RING_ENTRIES 64

static int ring(const char *path, long n) {
    int fd = unix_connect(path);
    int mem = memfd_create("ring", MFD_CLOEXEC);
    size_t size = 64 + 64 * RING_ENTRIES;
    if (mem < 0 || ftruncate(mem, (off_t)size) < 0) { perror("memfd"); return 1; }
    int bell = eventfd(0, EFD_CLOEXEC);
    uint8_t *r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
    uint8_t msg[HDR + 8];
    put32(msg, IOMMU_SET_TRANSLATE_RING);
    put32(msg + 4, 1 | 8); /* NEED_REPLY */
    put32(msg + 8, 8);
    put32(msg + HDR, RING_ENTRIES);
    put32(msg + HDR + 4, 0);
    struct iovec iov = {msg, sizeof(msg)};
    union { char buf[CMSG_SPACE(2 * sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {mem, bell};
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    if (sendmsg(fd, &mh, 0) < 0) { perror("sendmsg"); return 1; }
    uint8_t ack[HDR + 8];
    if (read_full(fd, ack, sizeof(ack)) < 0 || get64(ack + HDR) != 0) { fprintf(stderr, "ring refused\n"); return 1; }
    double *t = malloc(sizeof(double) * (size_t)n);
    long warm = n / 10 + 1000;
    uint32_t k = 0;
    for (long i = -warm; i < n; i++, k++) {
        uint8_t *s = r + 64 + (size_t)(k % RING_ENTRIES) * 64;
        uint64_t iova = 0x10000000ull + ((uint64_t)(i & 0xffff) << 12) + 0x10;
        double t0 = now_us();
        translate_req(s + 8, 1, iova);
        __atomic_store_n((uint32_t *)s, 2 * k + 1, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n((uint32_t *)r, __ATOMIC_ACQUIRE)) {
            uint64_t one = 1;
            if (write(bell, &one, 8) != 8) return 1;
        }
        while (__atomic_load_n((uint32_t *)s, __ATOMIC_ACQUIRE) != 2 * k + 2) __builtin_ia32_pause();
        double t1 = now_us();
        if (get64(s + 32 + 8) != iova) { fprintf(stderr, "wrong translation\n"); return 1; }
        if (i >= 0) t[i] = t1 - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp);
    printf("ring n=%ld median_us=%.2f p99_us=%.2f\n", n, t[n / 2], t[(long)(n * 0.99)]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "server")) return server(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "rtt")) return rtt(argv[2], atol(argv[3]));
    if (argc >= 5 && !strcmp(argv[1], "batch")) return batch(argv[2], atof(argv[3]), atoi(argv[4]));
    if (argc >= 4 && !strcmp(argv[1], "ring")) return ring(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: %s server PATH | rtt PATH N | batch PATH SECONDS BATCH | ring PATH N\n", argv[0]);
    return 2;
}
