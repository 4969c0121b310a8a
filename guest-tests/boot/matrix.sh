#!/usr/bin/env bash
# The issue-12 benchmark matrix: iommu-emu, QEMU's built-in IOMMU and no IOMMU at all, on Linux 7.x,
# for the 1-vCPU read, passthrough, lazy and 4-vCPU (readers, NVMe, e1000e) workloads, SMMUv3 and
# virtio-iommu. Runs every case once per round (run.sh, one guest at a time), then prints the table
# of medians and ratios that BENCHMARKS.md shows. The virtio-iommu readers are also given per 1000
# of the guest's own IOMMU map/unmap calls (init.sh counts them), pooled over the rounds: how many
# calls the same readers take varies several-fold between boots with either IOMMU, and that phase's
# time follows it (each call a request the guest's driver waits for under its request lock). The
# SMMUv3 readers stay near the no-IOMMU floor whatever the count, so they are compared as timed.
#
#   guest-tests/boot/matrix.sh              # 3 rounds (about 20 minutes on 2 cores)
#   guest-tests/boot/matrix.sh --rounds 5
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=3
[ "${1:-}" != --rounds ] || rounds=$2
work=${IOMMU_EMU_BOOT_WORK:-/tmp/iommu-emu-boot}
out=$work/matrix.tsv; mkdir -p "$work"; : > "$out"
cases="none-7 builtin-smmuv3-7 smmuv3-7-default builtin-smmuv3-7-passthrough smmuv3-7-passthrough
builtin-smmuv3-7-lazy smmuv3-7-lazy builtin-viommu-7 viommu-7 builtin-viommu-7-passthrough viommu-7-passthrough
none-7-io builtin-smmuv3-7-io smmuv3-7-io builtin-viommu-7-io viommu-7-io"
for round in $(seq "$rounds"); do
    for c in $cases; do
        ok=1; "$here/run.sh" "$c" > "$work/matrix-$c.log" 2>&1 || ok=0
        f=$work/$c/console.log
        t() { sed -n "s/^T: $1 //p" "$f" | head -n 1; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$c" "$ok" "$(t host-boot-ms)" "$(t disk-read-seconds)" \
            "$(t readers-seconds)" "$(t net-seconds)" "$(t readers-iommu-calls)" >> "$out"
        echo "matrix: round $round $c: $([ $ok = 1 ] && echo ok || echo FAILED, see $work/matrix-$c.log)" >&2
    done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(lambda: collections.defaultdict(list))
failed = collections.Counter()
for line in open(sys.argv[1]):
    rnd, case, ok, boot, read, readers, net, calls = line.rstrip('\n').split('\t')
    if ok != '1':
        failed[case] += 1
        continue
    for k, v in (('boot', boot), ('read', read), ('readers', readers), ('net', net)):
        if v:
            d[case][k].append(float(v) / (1000 if k == 'boot' else 1))
    if readers and calls.isdigit() and int(calls) > 0:
        d[case]['pair'].append((float(readers), int(calls)))
def med(case, k):
    return statistics.median(d[case][k]) if d[case][k] else None
def per_call(case):
    # the readers' seconds per 1000 of the guest's IOMMU map/unmap calls, pooled over the rounds
    # (total seconds / total calls): how many calls a round takes varies between boots (init.sh)
    p = d[case]['pair']
    return 1000 * sum(t for t, _ in p) / sum(n for _, n in p) if p else None
def fmt(x):
    return '-' if x is None else '%.2f s' % x
def ratio(a, b):
    return '-' if a is None or b is None else '%.2f' % (a / b)
rows = [  # workload, figure, iommu-emu case, built-in case, no-IOMMU case
    ('1 vCPU, 64 MiB read (SMMUv3)', 'read', 'smmuv3-7-default', 'builtin-smmuv3-7', 'none-7'),
    ('1 vCPU, boot (SMMUv3)', 'boot', 'smmuv3-7-default', 'builtin-smmuv3-7', 'none-7'),
    ('passthrough, 64 MiB read (SMMUv3)', 'read', 'smmuv3-7-passthrough', 'builtin-smmuv3-7-passthrough', 'none-7'),
    ('lazy (iommu.strict=0), 64 MiB read (SMMUv3)', 'read', 'smmuv3-7-lazy', 'builtin-smmuv3-7-lazy', 'none-7'),
    ('4 vCPUs, 4 parallel readers + NVMe (SMMUv3)', 'readers', 'smmuv3-7-io', 'builtin-smmuv3-7-io', 'none-7-io'),
    ('4 vCPUs, e1000e 2 MiB TFTP (SMMUv3)', 'net', 'smmuv3-7-io', 'builtin-smmuv3-7-io', 'none-7-io'),
    ('1 vCPU, 64 MiB read (virtio-iommu)', 'read', 'viommu-7', 'builtin-viommu-7', 'none-7'),
    ('passthrough, 64 MiB read (virtio-iommu)', 'read', 'viommu-7-passthrough', 'builtin-viommu-7-passthrough', 'none-7'),
    ('4 vCPUs, 4 parallel readers + NVMe (virtio-iommu)', 'readers', 'viommu-7-io', 'builtin-viommu-7-io', 'none-7-io'),
    ('4 vCPUs, readers per 1000 IOMMU map/unmap calls (virtio-iommu)', 'per-call', 'viommu-7-io', 'builtin-viommu-7-io', 'none-7-io'),
    ('4 vCPUs, e1000e 2 MiB TFTP (virtio-iommu)', 'net', 'viommu-7-io', 'builtin-viommu-7-io', 'none-7-io'),
]
print('| workload | no IOMMU | built-in | iommu-emu | iommu-emu / built-in (goal <= 1.1) | built-in / no IOMMU | iommu-emu / no IOMMU |')
print('|---|---|---|---|---|---|---|')
g = {}
for name, k, ours, builtin, none in rows:
    if k == 'per-call':
        o, b, n = per_call(ours), per_call(builtin), None
    else:
        o, b, n = med(ours, k), med(builtin, k), med(none, k)
    if o and b:
        # a readers workload counts once in the mean: per call when both were counted
        g[(ours, 'readers' if k == 'per-call' else k)] = o / b
    print('| %s | %s | %s | %s | %s | %s | %s |' % (name, fmt(n), fmt(b), fmt(o), ratio(o, b), ratio(b, n), ratio(o, n)))
if g:
    print('\nGeometric mean of iommu-emu / built-in over the %d workloads (the readers per call where counted): %.2f'
          ' (goal <= 1.0).' % (len(g), statistics.geometric_mean(g.values())))
if failed:
    print('\nFailed runs (left out): %s' % dict(failed))
PY
