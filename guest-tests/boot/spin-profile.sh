#!/usr/bin/env bash
# Where the guest's vCPUs spin: boots run.sh cases under QEMU's TCG with the spinsites plugin
# (plugins/spinsites.c) sampling the guest call chains inside one kernel function (by default the
# queued spinlock slow path), and prints, per case, the chains that take the most samples with the
# case's readers time. One extra boot first reads the kernel's symbols (/proc/kallsyms, KASLR off).
#
#   guest-tests/boot/spin-profile.sh builtin-viommu-7-io viommu-7-io
#   guest-tests/boot/spin-profile.sh --function queued_spin_lock_slowpath --period 512 CASE...
# Needs QEMU built with plugins (build-qemu.sh's is) and its source tree for qemu-plugin.h
# ($IOMMU_EMU_QEMU_WORK, as build-qemu.sh). Work files: $IOMMU_EMU_BOOT_WORK/spin-profile.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/guest-tests/boot
work=${IOMMU_EMU_BOOT_WORK:-/tmp/iommu-emu-boot}/spin-profile
fn=queued_spin_lock_slowpath
period=512
cases=()
while [ $# -gt 0 ]; do
    case $1 in
        --function) fn=$2; shift ;;
        --period) period=$2; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) cases+=("$1") ;;
    esac
    shift
done
die() { echo "spin-profile: ERROR: $*" >&2; exit 1; }
[ ${#cases[@]} -gt 0 ] || die "name the run.sh cases to profile (run.sh --list)"
mkdir -p "$work"
qemu=${IOMMU_EMU_QEMU:-$("$root/vhost-bridge/qemu/build-qemu.sh")} || die "building QEMU failed"
src=${IOMMU_EMU_QEMU_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/iommu-emu/qemu-src}
hdr=$(ls -d "$src"/qemu-10.0*/include/qemu 2>/dev/null | head -n 1)
[ -f "$hdr/qemu-plugin.h" ] || die "no qemu-plugin.h under $src (run vhost-bridge/qemu/build-qemu.sh first)"
# shellcheck disable=SC2046
gcc -Wall -O2 -shared -fPIC -o "$work/spinsites.so" "$here/plugins/spinsites.c" -I"$hdr" \
    $(pkg-config --cflags glib-2.0) || die "the plugin does not build"

# A QEMU that boots the kernel with KASLR off (so addresses match across boots), with more kernel
# arguments and the plugin when asked.
wrap=$work/qemu.sh
cat > "$wrap" <<W
#!/usr/bin/env bash
args=()
for a in "\$@"; do
    case \$a in *console=ttyAMA0*) a="\$a nokaslr \${SPIN_APPEND:-}" ;; esac
    args+=("\$a")
done
exec "$qemu" "\${args[@]}" \${SPIN_PLUGIN:+-plugin "\$SPIN_PLUGIN" -d plugin -D "\$SPIN_OUT"}
W
chmod +x "$wrap"

# The symbols, from the first case's kernel (init.sh prints them with iommuemu.kallsyms).
SPIN_APPEND=iommuemu.kallsyms IOMMU_EMU_QEMU=$wrap IOMMU_EMU_BOOT_WORK=$work/boots \
    "$here/run.sh" "${cases[0]}" > "$work/kallsyms-boot.log" 2>&1 || true
sed -n 's/^K: //p' "$work/boots/${cases[0]}/console.log" > "$work/kallsyms.txt"
range=$(awk -v f="$fn" '$2 ~ /^[tT]$/ {print $1, $3}' "$work/kallsyms.txt" | sort |
    awk -v f="$fn" 'found == 1 {hi = $1; found = 2} $2 == f && !found {lo = $1; found = 1} END {if (hi) print lo, hi}')
[ -n "$range" ] || die "no function $fn in the guest's symbols (see $work/kallsyms-boot.log)"
read -r lo hi <<<"$range"
echo "spin-profile: $fn at [0x$lo, 0x$hi), one sample per $period executions" >&2

for c in "${cases[@]}"; do
    rm -f "$work/$c.samples"
    SPIN_PLUGIN=$work/spinsites.so,lo=$lo,hi=$hi,period=$period SPIN_OUT=$work/$c.samples \
        IOMMU_EMU_QEMU=$wrap IOMMU_EMU_BOOT_WORK=$work/boots "$here/run.sh" "$c" > "$work/$c.log" 2>&1 \
        || echo "spin-profile: $c failed (see $work/$c.log); its samples are still shown" >&2
done
python3 - "$work" "${cases[@]}" <<'PY'
import bisect, collections, os, sys
work, cases = sys.argv[1], sys.argv[2:]
syms = []
for line in open(os.path.join(work, 'kallsyms.txt')):
    f = line.split()
    if len(f) >= 3 and f[1] in 'tT':
        syms.append((int(f[0], 16), f[2]))
syms.sort()
addrs = [a for a, _ in syms]
def name(h):
    # a kernel return address with its pointer-authentication code (Arm ARM, FEAT_PAuth) in the
    # bits above the virtual address set back to ones, as a TTBR1 (kernel) address has them
    a = int(h, 16) | 0xffff000000000000
    i = bisect.bisect_right(addrs, a) - 1
    return syms[i][1] if i >= 0 and a - addrs[i] < 0x10000 else hex(a)
for c in cases:
    con = os.path.join(work, 'boots', c, 'console.log')
    readers = [l.split()[2] for l in open(con, errors='replace') if l.startswith('T: readers-seconds')] \
        if os.path.exists(con) else []
    chains, total = collections.Counter(), 0
    path = os.path.join(work, c + '.samples')
    for line in open(path) if os.path.exists(path) else []:
        f = line.split()
        if f and f[0] == 'S':
            chains[' < '.join(name(x) for x in f[3:7])] += int(f[1])
            total += int(f[1])
    print('%s: %d samples%s' % (c, total, ', readers %s s' % readers[0] if readers else ''))
    for chain, n in chains.most_common(8):
        print('  %5.1f %%  %s' % (100.0 * n / max(total, 1), chain))
PY
