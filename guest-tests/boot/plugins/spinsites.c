/*
 * spinsites: a TCG plugin that samples the guest call chains executing inside
 * one guest function (by default the guest kernel's queued spinlock slow path,
 * so the chains say which lock the vCPUs spin on). Used by spin-profile.sh.
 *
 * Arguments: lo=HEX,hi=HEX the function's [start, end) guest virtual
 * addresses; period=N one sample per N translation-block executions inside
 * it, per vCPU.
 *
 * A sample reads x29/x30 (AAPCS64 frame record: x29 points at {previous x29,
 * return address}) and walks four frame records, so the guest kernel must keep
 * frame pointers (arm64 Linux does). Output, at exit, one line per distinct
 * chain: "S <samples> <lr> <ret1> <ret2> <ret3> <ret4>" (hex, pointer
 * authentication bits not stripped).
 *
 * Plugin API: include/qemu/qemu-plugin.h, version 4 (QEMU 9.2 and later:
 * conditional callbacks, register and virtual memory reads).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define FRAMES 5
#define MAX_VCPUS 256

static uint64_t lo, hi, period = 512;
static qemu_plugin_u64 since;           /* executions since the last sample */
static GMutex lock;
static GHashTable *chains;              /* "lr ret1 .." -> samples */
static struct qemu_plugin_register *fp_reg[MAX_VCPUS], *lr_reg[MAX_VCPUS];

static void vcpu_init(qemu_plugin_id_t id, unsigned int i)
{
    g_autoptr(GArray) regs = qemu_plugin_get_registers();

    for (guint k = 0; i < MAX_VCPUS && k < regs->len; k++) {
        qemu_plugin_reg_descriptor *d =
            &g_array_index(regs, qemu_plugin_reg_descriptor, k);

        if (!strcmp(d->name, "x29")) {
            fp_reg[i] = d->handle;
        } else if (!strcmp(d->name, "x30")) {
            lr_reg[i] = d->handle;
        }
    }
}

static uint64_t read_reg(struct qemu_plugin_register *h)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    uint64_t v = 0;

    if (h && qemu_plugin_read_register(h, b) >= 8) {
        memcpy(&v, b->data, 8);
    }
    return v;
}

static void sample(unsigned int i, void *udata)
{
    uint64_t chain[FRAMES] = { 0 };
    uint64_t fp;
    char key[FRAMES * 17 + 1];
    size_t n = 0;

    qemu_plugin_u64_set(since, i, 0);
    if (i >= MAX_VCPUS) {
        return;
    }
    fp = read_reg(fp_reg[i]);
    chain[0] = read_reg(lr_reg[i]);
    for (int k = 1; k < FRAMES && fp; k++) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        uint64_t rec[2] = { 0, 0 };

        if (qemu_plugin_read_memory_vaddr(fp, b, sizeof(rec))) {
            memcpy(rec, b->data, sizeof(rec));
        }
        chain[k] = rec[1];
        fp = rec[0];
    }
    for (int k = 0; k < FRAMES; k++) {
        n += snprintf(key + n, sizeof(key) - n, "%s%" PRIx64,
                      k ? " " : "", chain[k]);
    }
    g_mutex_lock(&lock);
    g_hash_table_replace(chains, g_strdup(key), GSIZE_TO_POINTER(
        GPOINTER_TO_SIZE(g_hash_table_lookup(chains, key)) + 1));
    g_mutex_unlock(&lock);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t pc = qemu_plugin_tb_vaddr(tb);

    if (pc < lo || pc >= hi) {
        return;
    }
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
        tb, QEMU_PLUGIN_INLINE_ADD_U64, since, 1);
    qemu_plugin_register_vcpu_tb_exec_cond_cb(
        tb, sample, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_COND_GE, since,
        period, NULL);
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    g_autoptr(GString) out = g_string_new("");
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, chains);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        g_string_append_printf(out, "S %zu %s\n", GPOINTER_TO_SIZE(v),
                               (char *)k);
    }
    qemu_plugin_outs(out->str);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "lo=", 3)) {
            lo = strtoull(argv[i] + 3, NULL, 16);
        } else if (!strncmp(argv[i], "hi=", 3)) {
            hi = strtoull(argv[i] + 3, NULL, 16);
        } else if (!strncmp(argv[i], "period=", 7)) {
            period = strtoull(argv[i] + 7, NULL, 0);
        } else {
            fprintf(stderr, "spinsites: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (!lo || hi <= lo || !period) {
        fprintf(stderr, "spinsites: needs lo=HEX,hi=HEX (lo < hi) and "
                "period > 0\n");
        return -1;
    }
    chains = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    since = qemu_plugin_scoreboard_u64(
        qemu_plugin_scoreboard_new(sizeof(uint64_t)));
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
