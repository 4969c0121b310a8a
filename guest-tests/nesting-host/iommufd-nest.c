/*
 * iommufd-nest: a guest kernel acting as an SMMUv3 nesting host, driven through the real uAPI.
 *
 * The program plays the VMM of a nested guest for QEMU's edu device (PCI 1234:11e8) bound to
 * vfio-pci: its own memory is the nested guest's RAM (mapped into an IOAS: stage 2, the nest
 * parent), and it writes a guest CD and stage 1 tables into that memory (IHI 0070 §5.4 CD, Arm
 * ARM VMSAv8-64 4 KiB tables), as a guest driver would. Each step prints one line:
 *     NEST step=<name> ok [details]        or
 *     NEST step=<name> FAIL errno=<E...> [details]
 * and the program ends with "NEST result=ok" or "NEST result=FAIL" (exit 0 / 1).
 *
 * Usage: iommufd-nest VFIO_CDEV [--expect-idr I0,I1,I2,I3,I4,I5] [--expect-no-nesting] [--vsid N]
 *   VFIO_CDEV             /dev/vfio/devices/vfioN of the edu device (bound to vfio-pci)
 *   --expect-idr          the SMMU_IDR0-5 values GET_HW_INFO must report (hex, comma separated)
 *   --expect-no-nesting   the SMMU has no stage 2 (profile s1-only): a nest parent HWPT must be
 *                         refused with EOPNOTSUPP, and the program stops there
 *   --vsid N              the virtual StreamID for IOMMU_VDEVICE_ALLOC (default 0x42)
 *
 * Structures follow include/uapi/linux/iommufd.h and vfio.h of the kernel under test; the STE,
 * CD, command and event layouts follow IHI 0070 (§5.2, §5.4, §4, §7.3).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

/* ---- the nested guest's memory: one buffer, IOAS-mapped at ipa_base (its IPA 0) */
#define RAM_SIZE (4u << 20)
#define PAGE 4096u
/* Offsets in guest RAM */
#define OFF_CD0 0x0000u     /* CD (64 bytes), first CD table (S1CDMax 0: one CD) */
#define OFF_CD1 0x1000u     /* the second CD, for the CFGI_CD step */
#define OFF_TT0 0x10000u    /* first stage 1 tree: L1, L2, L3 at +0, +0x1000, +0x2000 */
#define OFF_TT1 0x20000u    /* second stage 1 tree (same layout) */
#define OFF_SRC 0x100000u   /* DMA source page */
#define OFF_DST 0x200000u   /* DMA destination page (first mapping) */
#define OFF_DST2 0x280000u  /* destination after the PTE change */
#define OFF_DST3 0x300000u  /* destination under the second CD */
/* Stage 1 input addresses (VAs): below 2^28, the edu device's default DMA mask */
#define VA_SRC 0x0100000ull
#define VA_DST 0x0200000ull
#define VA_UNMAPPED 0x0400000ull
#define ASID0 1
#define ASID1 2

/* ---- edu (QEMU docs/specs/edu.rst): BAR0 registers; the device's buffer at 0x40000 */
#define EDU_ID 0x00
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_START 0x1
#define EDU_CMD_TO_RAM 0x2
#define EDU_BUF 0x40000u
#define XFER 256u

static int failures;
static int iommufd = -1, devfd = -1;
static uint8_t *ram;
static uint64_t ipa_base;
static uint64_t bar0_off, cfg_off;

static void line(const char *step, int ok, int err, const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ok)
		printf("NEST step=%s ok%s%s\n", step, *msg ? " " : "", msg);
	else {
		failures++;
		printf("NEST step=%s FAIL errno=%s%s%s\n", step, err ? strerrorname_np(err) : "0", *msg ? " " : "",
		       msg);
	}
	fflush(stdout);
}

static int finish(void)
{
	printf("NEST result=%s\n", failures ? "FAIL" : "ok");
	fflush(stdout);
	return failures ? 1 : 0;
}

/* ---- little-endian 64-bit stores into guest RAM (arm64 is little-endian) */
static void put64(uint32_t off, uint64_t v)
{
	memcpy(ram + off, &v, 8);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static uint64_t ipa(uint32_t off)
{
	return ipa_base + off;
}

/* ---- edu BAR0 and config space through the VFIO device fd */
static int bar_write32(uint32_t reg, uint32_t v)
{
	return pwrite(devfd, &v, 4, (off_t)(bar0_off + reg)) == 4 ? 0 : -1;
}

static int bar_read32(uint32_t reg, uint32_t *v)
{
	return pread(devfd, v, 4, (off_t)(bar0_off + reg)) == 4 ? 0 : -1;
}

/* One edu DMA of XFER bytes; returns 0 when the engine finished (bounded wait: 5 s). */
static int edu_dma(uint64_t src, uint64_t dst, uint32_t cmd)
{
	uint32_t c = EDU_CMD_START;

	if (bar_write32(EDU_DMA_SRC, (uint32_t)src) || bar_write32(EDU_DMA_DST, (uint32_t)dst) ||
	    bar_write32(EDU_DMA_CNT, XFER) || bar_write32(EDU_DMA_CMD, cmd))
		return -1;
	for (int i = 0; i < 5000 && (c & EDU_CMD_START); i++) {
		usleep(1000);
		if (bar_read32(EDU_DMA_CMD, &c))
			return -1;
	}
	return (c & EDU_CMD_START) ? -1 : 0;
}

/* RAM -> edu buffer, then edu buffer -> RAM, both through the IOMMU. */
static int copy_through_edu(uint64_t src_va, uint64_t dst_va)
{
	if (edu_dma(src_va, EDU_BUF, EDU_CMD_START))
		return -1;
	return edu_dma(EDU_BUF, dst_va, EDU_CMD_START | EDU_CMD_TO_RAM);
}

/* ---- stage 1 tables (Arm ARM D8.3, 4 KiB granule, 39-bit VA: levels 1-3), entries hold IPAs */
#define DESC_TABLE 0x3ull   /* valid, table (levels 1-2) or page (level 3) */
#define DESC_AF (1ull << 10)
#define DESC_SH_INNER (3ull << 8)
#define DESC_AP_USER (1ull << 6) /* AP[1]: EL0 access (DMA is unprivileged) */
/*
 * nG: the entry belongs to the CD's ASID (Arm ARM D8.16, VMSAv8-64 global and process-specific
 * translations). A global entry would match under any ASID, so the CD change of step 13 (new
 * ASID, new tables) would legitimately keep hitting the old, still cached translation.
 */
#define DESC_NG (1ull << 11)

/* A tree at tt: L1 at +0, L2 at +1 page, one L3 per 2 MiB region r at +(2 + r) pages (r < 6). */
static void s1_tree(uint32_t tt)
{
	memset(ram + tt, 0, 8 * PAGE);
	put64(tt, ipa(tt + PAGE) | DESC_TABLE); /* L1[0] (VA[38:30] == 0) -> L2 */
}

/* Maps the 4 KiB page at va (< 12 MiB) to guest RAM offset off in the tree at tt. */
static void s1_map(uint32_t tt, uint64_t va, uint32_t off)
{
	uint32_t i2 = (uint32_t)((va >> 21) & 511), i3 = (uint32_t)((va >> 12) & 511);
	uint32_t l3 = tt + (2 + i2) * PAGE;

	put64(tt + PAGE + i2 * 8, ipa(l3) | DESC_TABLE);
	put64(l3 + i3 * 8, ipa(off) | DESC_TABLE | DESC_AF | DESC_SH_INNER | DESC_AP_USER | DESC_NG);
}

/* ---- CD (IHI 0070 §5.4): T0SZ 25, TG0 4K, IR0/OR0 WBWA, SH0 ISH, EPD1, V, IPS 48-bit, AA64, R, A */
static void write_cd(uint32_t off, uint32_t tt, uint16_t asid)
{
	uint64_t w0 = 25ull                  /* T0SZ [5:0] */
		      | (1ull << 8) | (1ull << 10) /* IR0, OR0 = WBWA */
		      | (3ull << 12)              /* SH0 = ISH */
		      | (1ull << 30)              /* EPD1 */
		      | (1ull << 31)              /* V */
		      | (5ull << 32)              /* IPS = 48 bits */
		      | (1ull << 41)              /* AA64 */
		      | (1ull << 45) | (1ull << 46) /* R: record faults, A: abort on fault */
		      | ((uint64_t)asid << 48);
	memset(ram + off, 0, 64);
	put64(off + 8, ipa(tt) & 0x000ffffffffffff0ull); /* TTB0 [51:4] */
	put64(off + 24, 0xffull);                         /* MAIR: Attr0 Normal WB */
	put64(off, w0);                                   /* V last */
}

/* ---- commands (IHI 0070 §4.4.2 CMD_TLBI_NH_VA, §4.3.2 CMD_CFGI_CD) forwarded by the kernel */
static int invalidate(uint32_t viommu, uint64_t c0, uint64_t c1, uint32_t *handled)
{
	struct iommu_viommu_arm_smmuv3_invalidate cmd = { .cmd = { c0, c1 } };
	struct iommu_hwpt_invalidate inv = {
		.size = sizeof(inv), .hwpt_id = viommu, .data_uptr = (uintptr_t)&cmd,
		.data_type = IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, .entry_len = sizeof(cmd), .entry_num = 1,
	};
	int r = ioctl(iommufd, IOMMU_HWPT_INVALIDATE, &inv);

	*handled = inv.entry_num;
	return r;
}

/* Whether [off, off + n) of guest RAM holds the byte pattern p. */
static int holds(uint32_t off, uint8_t p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (ram[off + i] != p)
			return 0;
	return 1;
}

/* The first offset outside the excluded ranges where guest RAM differs from the canary 0xa5, or -1. */
static long changed_elsewhere(uint32_t a, uint32_t b)
{
	for (uint32_t i = OFF_SRC; i < RAM_SIZE; i++) {
		if ((i >= OFF_SRC && i < OFF_SRC + PAGE) || (i >= a && i < a + PAGE) || (i >= b && i < b + PAGE))
			continue;
		if (ram[i] != 0xa5)
			return i;
	}
	return -1;
}

static int parse_idrs(const char *s, uint32_t idr[6])
{
	char *end;

	for (int i = 0; i < 6; i++) {
		errno = 0;
		unsigned long v = strtoul(s, &end, 16);

		if (errno || end == s || (i < 5 && *end != ',') || (i == 5 && *end))
			return -1;
		idr[i] = (uint32_t)v;
		s = end + 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t want_idr[6];
	int check_idr = 0, expect_no_nesting = 0;
	uint64_t vsid = 0x42;
	const char *cdev = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--expect-idr") && i + 1 < argc) {
			if (parse_idrs(argv[++i], want_idr)) {
				fprintf(stderr, "iommufd-nest: --expect-idr wants six hex values, e.g. 0x1,0x2,0,0,0,0x75\n");
				return 2;
			}
			check_idr = 1;
		} else if (!strcmp(argv[i], "--expect-no-nesting")) {
			expect_no_nesting = 1;
		} else if (!strcmp(argv[i], "--vsid") && i + 1 < argc) {
			vsid = strtoull(argv[++i], NULL, 0);
		} else if (!cdev && argv[i][0] != '-') {
			cdev = argv[i];
		} else {
			fprintf(stderr, "usage: iommufd-nest /dev/vfio/devices/vfioN [--expect-idr I0,..,I5] "
					"[--expect-no-nesting] [--vsid N]\n");
			return 2;
		}
	}
	if (!cdev) {
		fprintf(stderr, "iommufd-nest: name the edu device's VFIO cdev, e.g. /dev/vfio/devices/vfio0\n");
		return 2;
	}

	/* 1. /dev/iommu and the device cdev, bound together (VFIO_DEVICE_BIND_IOMMUFD) */
	iommufd = open("/dev/iommu", O_RDWR);
	devfd = open(cdev, O_RDWR);
	if (iommufd < 0 || devfd < 0) {
		line("open", 0, errno, "iommufd=%d device=%s", iommufd, cdev);
		return finish();
	}
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	if (ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		line("bind", 0, errno, "");
		return finish();
	}
	line("bind", 1, 0, "dev_id=%u", bind.out_devid);

	/* 2. IOMMU_GET_HW_INFO: struct iommu_hw_info_arm_smmuv3 */
	struct iommu_hw_info_arm_smmuv3 hw = { 0 };
	struct iommu_hw_info info = { .size = sizeof(info), .dev_id = bind.out_devid, .data_len = sizeof(hw),
				      .data_uptr = (uintptr_t)&hw };
	if (ioctl(iommufd, IOMMU_GET_HW_INFO, &info)) {
		line("hw_info", 0, errno, "");
		return finish();
	}
	int idr_ok = info.out_data_type == IOMMU_HW_INFO_TYPE_ARM_SMMUV3;
	if (check_idr)
		for (int i = 0; i < 6; i++)
			idr_ok &= hw.idr[i] == want_idr[i];
	line("hw_info", idr_ok, 0, "type=%u idr=0x%x,0x%x,0x%x,0x%x,0x%x,0x%x iidr=0x%x aidr=0x%x%s", info.out_data_type,
	     hw.idr[0], hw.idr[1], hw.idr[2], hw.idr[3], hw.idr[4], hw.idr[5], hw.iidr, hw.aidr,
	     check_idr ? (idr_ok ? " matches" : " differs from --expect-idr") : "");

	/* 3. guest RAM into an IOAS: its IOVAs are the nested guest's IPAs */
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ram == MAP_FAILED) {
		line("guest_ram", 0, errno, "");
		return finish();
	}
	memset(ram, 0xa5, RAM_SIZE);
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &ioas)) {
		line("ioas", 0, errno, "");
		return finish();
	}
	/* IPA 1 GiB: inside any stage 2 input range (OAS >= 32 bits), clear of the arm64 SW MSI window
	 * at 0x8000000; should the kernel refuse it, let it choose. */
	struct iommu_ioas_map map = { .size = sizeof(map), .ioas_id = ioas.out_ioas_id,
				      .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
					       IOMMU_IOAS_MAP_WRITEABLE,
				      .user_va = (uintptr_t)ram, .length = RAM_SIZE, .iova = 0x40000000ull };
	if (ioctl(iommufd, IOMMU_IOAS_MAP, &map)) {
		map.flags &= ~IOMMU_IOAS_MAP_FIXED_IOVA;
		map.iova = 0;
		if (ioctl(iommufd, IOMMU_IOAS_MAP, &map)) {
			line("ioas_map", 0, errno, "");
			return finish();
		}
	}
	ipa_base = map.iova;
	line("ioas_map", 1, 0, "ioas=%u ipa=0x%llx size=0x%x", ioas.out_ioas_id, (unsigned long long)ipa_base, RAM_SIZE);

	/* 4. the nest parent: a stage 2 HWPT over the IOAS (IOMMU_HWPT_ALLOC_NEST_PARENT) */
	struct iommu_hwpt_alloc parent = { .size = sizeof(parent), .flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
					   .dev_id = bind.out_devid, .pt_id = ioas.out_ioas_id };
	int r = ioctl(iommufd, IOMMU_HWPT_ALLOC, &parent);
	int e = errno;
	if (expect_no_nesting) {
		line("nest_parent_refused", r && e == EOPNOTSUPP, r ? e : 0, r ? "" : "a nest parent was allocated");
		return finish();
	}
	if (r) {
		line("nest_parent", 0, e, "");
		return finish();
	}
	line("nest_parent", 1, 0, "hwpt=%u", parent.out_hwpt_id);

	/* 5. vIOMMU (needs FEAT_NESTING and, without ACPI CANWBS, SMMU_IDR3.FWB) */
	struct iommu_viommu_alloc viommu = { .size = sizeof(viommu), .type = IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
					     .dev_id = bind.out_devid, .hwpt_id = parent.out_hwpt_id };
	if (ioctl(iommufd, IOMMU_VIOMMU_ALLOC, &viommu)) {
		line("viommu", 0, errno, "");
		return finish();
	}
	line("viommu", 1, 0, "viommu=%u", viommu.out_viommu_id);

	/* 6. vDEVICE: the guest's StreamID for this device */
	struct iommu_vdevice_alloc vdev = { .size = sizeof(vdev), .viommu_id = viommu.out_viommu_id,
					    .dev_id = bind.out_devid, .virt_id = vsid };
	if (ioctl(iommufd, IOMMU_VDEVICE_ALLOC, &vdev)) {
		line("vdevice", 0, errno, "vsid=0x%llx", (unsigned long long)vsid);
		return finish();
	}
	line("vdevice", 1, 0, "vdevice=%u vsid=0x%llx", vdev.out_vdevice_id, (unsigned long long)vsid);

	/* 7. vEVENTQ for the guest's event records */
	struct iommu_veventq_alloc veq = { .size = sizeof(veq), .viommu_id = viommu.out_viommu_id,
					   .type = IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, .veventq_depth = 16 };
	if (ioctl(iommufd, IOMMU_VEVENTQ_ALLOC, &veq)) {
		line("veventq", 0, errno, "");
		return finish();
	}
	line("veventq", 1, 0, "veventq=%u fd=%u", veq.out_veventq_id, veq.out_veventq_fd);

	/* 8. the guest's CD and stage 1 tables, in guest RAM; its STE words 0-1 (IHI 0070 §5.2) */
	s1_tree(OFF_TT0);
	s1_map(OFF_TT0, VA_SRC, OFF_SRC);
	s1_map(OFF_TT0, VA_DST, OFF_DST);
	write_cd(OFF_CD0, OFF_TT0, ASID0);
	struct iommu_hwpt_arm_smmuv3 vste = { .ste = {
		0x1ull | (0x5ull << 1) | (ipa(OFF_CD0) & 0x00ffffffffffffc0ull), /* V, Config S1, S1ContextPtr */
		(1ull << 2) | (1ull << 4) | (3ull << 6),                        /* S1CIR, S1COR WBRA, S1CSH ISH */
	} };
	struct iommu_hwpt_alloc nested = { .size = sizeof(nested), .dev_id = bind.out_devid,
					   .pt_id = viommu.out_viommu_id, .data_type = IOMMU_HWPT_DATA_ARM_SMMUV3,
					   .data_len = sizeof(vste), .data_uptr = (uintptr_t)&vste };
	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &nested)) {
		line("nested_hwpt", 0, errno, "");
		return finish();
	}
	line("nested_hwpt", 1, 0, "hwpt=%u ste=0x%llx,0x%llx", nested.out_hwpt_id, (unsigned long long)vste.ste[0],
	     (unsigned long long)vste.ste[1]);
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = nested.out_hwpt_id };
	if (ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at)) {
		line("attach", 0, errno, "");
		return finish();
	}
	line("attach", 1, 0, "pt=%u", at.pt_id);

	/* 9. the edu device: BAR0, bus mastering on (PCI command register bit 2) */
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t pcicmd = 0;
	uint32_t id = 0;
	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &bar) || ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &cfg)) {
		line("edu", 0, errno, "region info");
		return finish();
	}
	bar0_off = bar.offset;
	cfg_off = cfg.offset;
	if (pread(devfd, &pcicmd, 2, (off_t)(cfg_off + 4)) != 2) {
		line("edu", 0, errno, "config read");
		return finish();
	}
	pcicmd |= 0x4;
	if (pwrite(devfd, &pcicmd, 2, (off_t)(cfg_off + 4)) != 2 || bar_read32(EDU_ID, &id)) {
		line("edu", 0, errno, "config write / BAR0 read");
		return finish();
	}
	line("edu", (id & 0xff) == 0xed, 0, "id=0x%08x", id);

	/* 10. DMA through both stages: VA_SRC -> edu -> VA_DST lands at IPA OFF_DST and nowhere else */
	memset(ram + OFF_SRC, 0x11, PAGE);
	if (copy_through_edu(VA_SRC, VA_DST)) {
		line("dma", 0, errno, "the edu DMA did not finish");
		return finish();
	}
	long other = changed_elsewhere(OFF_DST, OFF_DST);
	line("dma", holds(OFF_DST, 0x11, XFER) && holds(OFF_DST + XFER, 0xa5, PAGE - XFER) && other < 0, 0,
	     "va=0x%llx ipa=0x%llx%s", (unsigned long long)VA_DST, (unsigned long long)ipa(OFF_DST),
	     other < 0 ? "" : " but guest RAM changed elsewhere");

	/* 11. DMA to a VA stage 1 does not map: F_TRANSLATION on the vEVENTQ with the virtual StreamID */
	if (edu_dma(EDU_BUF, VA_UNMAPPED, EDU_CMD_START | EDU_CMD_TO_RAM)) {
		line("fault_event", 0, errno, "the edu DMA did not finish");
		return finish();
	}
	struct pollfd pfd = { .fd = (int)veq.out_veventq_fd, .events = POLLIN };
	struct {
		struct iommufd_vevent_header h;
		struct iommu_vevent_arm_smmuv3 v;
	} ev = { 0 };
	ssize_t n = -1;
	if (poll(&pfd, 1, 3000) == 1)
		n = read(pfd.fd, &ev, sizeof(ev));
	uint64_t e0 = ev.v.evt[0], e2 = ev.v.evt[2];
	/* §7.3.10 F_TRANSLATION: type 0x10 in [7:0], StreamID in [63:32], InputAddr in dword 2 */
	line("fault_event", n == (ssize_t)sizeof(ev) && (e0 & 0xff) == 0x10 && (e0 >> 32) == vsid && e2 == VA_UNMAPPED,
	     n < 0 ? errno : 0, "read=%zd seq=%u evt=0x%llx,0x%llx,0x%llx,0x%llx", n, ev.h.sequence,
	     (unsigned long long)e0, (unsigned long long)ev.v.evt[1], (unsigned long long)e2,
	     (unsigned long long)ev.v.evt[3]);

	/* 12. a PTE change takes effect after CMD_TLBI_NH_VA (the kernel puts in the VMID) */
	s1_map(OFF_TT0, VA_DST, OFF_DST2);
	memset(ram + OFF_SRC, 0x22, PAGE);
	int before = copy_through_edu(VA_SRC, VA_DST) == 0 && !holds(OFF_DST2, 0x22, 1);
	uint32_t handled = 0;
	uint64_t tlbi0 = 0x12ull | ((uint64_t)ASID0 << 48);                  /* CMD_TLBI_NH_VA, ASID */
	uint64_t tlbi1 = (VA_DST & ~0xfffull) | 1ull;                        /* Address, Leaf */
	r = invalidate(viommu.out_viommu_id, tlbi0, tlbi1, &handled);
	e = errno;
	memset(ram + OFF_SRC, 0x33, PAGE);
	int after = r == 0 && copy_through_edu(VA_SRC, VA_DST) == 0 && holds(OFF_DST2, 0x33, XFER);
	line("tlbi_nh_va", before && after, r ? e : 0, "handled=%u before=%s after=%s", handled,
	     before ? "old-mapping" : "new-mapping-too-early", after ? "new-mapping" : "not-new-mapping");

	/* 13. a CD change (new tables, new ASID) takes effect after CMD_CFGI_CD with the virtual SID */
	s1_tree(OFF_TT1);
	s1_map(OFF_TT1, VA_SRC, OFF_SRC);
	s1_map(OFF_TT1, VA_DST, OFF_DST3);
	write_cd(OFF_CD0, OFF_TT1, ASID1);
	memset(ram + OFF_SRC, 0x44, PAGE);
	before = copy_through_edu(VA_SRC, VA_DST) == 0 && !holds(OFF_DST3, 0x44, 1);
	uint64_t cfgi0 = 0x05ull | (vsid << 32); /* CMD_CFGI_CD, SSID 0, StreamID = vSID */
	r = invalidate(viommu.out_viommu_id, cfgi0, 1ull /* Leaf */, &handled);
	e = errno;
	memset(ram + OFF_SRC, 0x55, PAGE);
	after = r == 0 && copy_through_edu(VA_SRC, VA_DST) == 0 && holds(OFF_DST3, 0x55, XFER);
	line("cfgi_cd", before && after, r ? e : 0, "handled=%u before=%s after=%s", handled,
	     before ? "old-cd" : "new-cd-too-early", after ? "new-cd" : "not-new-cd");
	return finish();
}
