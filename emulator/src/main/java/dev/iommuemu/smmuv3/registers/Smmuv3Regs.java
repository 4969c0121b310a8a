package dev.iommuemu.smmuv3.registers;

import static dev.iommuemu.field.Access.RO;
import static dev.iommuemu.field.Access.RW;

import dev.iommuemu.field.Access;
import dev.iommuemu.field.Field;
import dev.iommuemu.field.Register;
import java.util.List;

/**
 * The non-secure SMMUv3 register file, declared once as data (IHI 0070 §6.2 register overview,
 * §6.3 register formats). Offsets are from the base of the two-page window: page 0 at 0x0, page 1
 * at 0x10000 (§6.2.2). The ID registers' values come from a profile, so their fields are declared
 * here with reset 0 and the profile supplies the value.
 */
public final class Smmuv3Regs {
    private Smmuv3Regs() {}

    /** Size of the MMIO window: page 0 and page 1 (IHI 0070 §6.1). */
    public static final int WINDOW_SIZE = 0x20000;
    /** Base of page 1 (IHI 0070 §6.2.2). */
    public static final int PAGE1 = 0x10000;

    private static Field ro(String n, int msb, int lsb) {
        return Field.of(n, lsb, msb - lsb + 1, RO, 0);
    }

    private static Field rw(String n, int msb, int lsb) {
        return Field.of(n, lsb, msb - lsb + 1, RW, 0);
    }

    private static Field rw(String n, int msb, int lsb, long reset) {
        return Field.of(n, lsb, msb - lsb + 1, RW, reset);
    }

    // ---- IHI 0070 §6.3 SMMU_IDR0
    public static final Field IDR0_S2P = ro("S2P", 0, 0);
    public static final Field IDR0_S1P = ro("S1P", 1, 1);
    public static final Field IDR0_TTF = ro("TTF", 3, 2);
    public static final Field IDR0_COHACC = ro("COHACC", 4, 4);
    public static final Field IDR0_BTM = ro("BTM", 5, 5);
    public static final Field IDR0_HTTU = ro("HTTU", 7, 6);
    public static final Field IDR0_DORMHINT = ro("DORMHINT", 8, 8);
    public static final Field IDR0_HYP = ro("Hyp", 9, 9);
    public static final Field IDR0_ATS = ro("ATS", 10, 10);
    public static final Field IDR0_NS1ATS = ro("NS1ATS", 11, 11);
    public static final Field IDR0_ASID16 = ro("ASID16", 12, 12);
    public static final Field IDR0_MSI = ro("MSI", 13, 13);
    public static final Field IDR0_SEV = ro("SEV", 14, 14);
    public static final Field IDR0_ATOS = ro("ATOS", 15, 15);
    public static final Field IDR0_PRI = ro("PRI", 16, 16);
    public static final Field IDR0_VMW = ro("VMW", 17, 17);
    public static final Field IDR0_VMID16 = ro("VMID16", 18, 18);
    public static final Field IDR0_CD2L = ro("CD2L", 19, 19);
    public static final Field IDR0_VATOS = ro("VATOS", 20, 20);
    public static final Field IDR0_TTENDIAN = ro("TTENDIAN", 22, 21);
    public static final Field IDR0_ATSRECERR = ro("ATSRECERR", 23, 23);
    public static final Field IDR0_STALL_MODEL = ro("STALL_MODEL", 25, 24);
    public static final Field IDR0_TERM_MODEL = ro("TERM_MODEL", 26, 26);
    public static final Field IDR0_ST_LEVEL = ro("ST_LEVEL", 28, 27);
    public static final Register IDR0 = new Register("SMMU_IDR0", 0x0, 4, RO, IDR0_S2P, IDR0_S1P, IDR0_TTF,
            IDR0_COHACC, IDR0_BTM, IDR0_HTTU, IDR0_DORMHINT, IDR0_HYP, IDR0_ATS, IDR0_NS1ATS, IDR0_ASID16,
            IDR0_MSI, IDR0_SEV, IDR0_ATOS, IDR0_PRI, IDR0_VMW, IDR0_VMID16, IDR0_CD2L, IDR0_VATOS,
            IDR0_TTENDIAN, IDR0_ATSRECERR, IDR0_STALL_MODEL, IDR0_TERM_MODEL, IDR0_ST_LEVEL);

    // ---- §6.3 SMMU_IDR1
    public static final Field IDR1_SIDSIZE = ro("SIDSIZE", 5, 0);
    public static final Field IDR1_SSIDSIZE = ro("SSIDSIZE", 10, 6);
    public static final Field IDR1_PRIQS = ro("PRIQS", 15, 11);
    public static final Field IDR1_EVENTQS = ro("EVENTQS", 20, 16);
    public static final Field IDR1_CMDQS = ro("CMDQS", 25, 21);
    public static final Field IDR1_ATTR_PERMS_OVR = ro("ATTR_PERMS_OVR", 26, 26);
    public static final Field IDR1_ATTR_TYPES_OVR = ro("ATTR_TYPES_OVR", 27, 27);
    public static final Field IDR1_REL = ro("REL", 28, 28);
    public static final Field IDR1_QUEUES_PRESET = ro("QUEUES_PRESET", 29, 29);
    public static final Field IDR1_TABLES_PRESET = ro("TABLES_PRESET", 30, 30);
    public static final Field IDR1_ECMDQ = ro("ECMDQ", 31, 31);
    public static final Register IDR1 = new Register("SMMU_IDR1", 0x4, 4, RO, IDR1_SIDSIZE, IDR1_SSIDSIZE,
            IDR1_PRIQS, IDR1_EVENTQS, IDR1_CMDQS, IDR1_ATTR_PERMS_OVR, IDR1_ATTR_TYPES_OVR, IDR1_REL,
            IDR1_QUEUES_PRESET, IDR1_TABLES_PRESET, IDR1_ECMDQ);

    // ---- §6.3 SMMU_IDR2
    public static final Field IDR2_BA_VATOS = ro("BA_VATOS", 9, 0);
    public static final Register IDR2 = new Register("SMMU_IDR2", 0x8, 4, RO, IDR2_BA_VATOS);

    // ---- §6.3 SMMU_IDR3
    public static final Field IDR3_HAD = ro("HAD", 2, 2);
    public static final Field IDR3_PBHA = ro("PBHA", 3, 3);
    public static final Field IDR3_XNX = ro("XNX", 4, 4);
    public static final Field IDR3_PPS = ro("PPS", 5, 5);
    public static final Field IDR3_MPAM = ro("MPAM", 7, 7);
    public static final Field IDR3_FWB = ro("FWB", 8, 8);
    public static final Field IDR3_STT = ro("STT", 9, 9);
    public static final Field IDR3_RIL = ro("RIL", 10, 10);
    public static final Field IDR3_BBML = ro("BBML", 12, 11);
    public static final Field IDR3_E0PD = ro("E0PD", 13, 13);
    public static final Field IDR3_PTWNNC = ro("PTWNNC", 14, 14);
    public static final Field IDR3_DPT = ro("DPT", 15, 15);
    public static final Register IDR3 = new Register("SMMU_IDR3", 0xc, 4, RO, IDR3_HAD, IDR3_PBHA, IDR3_XNX,
            IDR3_PPS, IDR3_MPAM, IDR3_FWB, IDR3_STT, IDR3_RIL, IDR3_BBML, IDR3_E0PD, IDR3_PTWNNC, IDR3_DPT);

    // ---- §6.3 SMMU_IDR4 (IMPLEMENTATION DEFINED)
    public static final Register IDR4 = new Register("SMMU_IDR4", 0x10, 4, RO, ro("IMPDEF", 31, 0));

    // ---- §6.3 SMMU_IDR5
    public static final Field IDR5_OAS = ro("OAS", 2, 0);
    public static final Field IDR5_GRAN4K = ro("GRAN4K", 4, 4);
    public static final Field IDR5_GRAN16K = ro("GRAN16K", 5, 5);
    public static final Field IDR5_GRAN64K = ro("GRAN64K", 6, 6);
    public static final Field IDR5_VAX = ro("VAX", 11, 10);
    public static final Field IDR5_STALL_MAX = ro("STALL_MAX", 31, 16);
    public static final Register IDR5 = new Register("SMMU_IDR5", 0x14, 4, RO, IDR5_OAS, IDR5_GRAN4K,
            IDR5_GRAN16K, IDR5_GRAN64K, IDR5_VAX, IDR5_STALL_MAX);

    // ---- §6.3 SMMU_IIDR, §6.3 SMMU_AIDR
    public static final Field IIDR_IMPLEMENTER = ro("Implementer", 11, 0);
    public static final Field IIDR_REVISION = ro("Revision", 15, 12);
    public static final Field IIDR_VARIANT = ro("Variant", 19, 16);
    public static final Field IIDR_PRODUCTID = ro("ProductID", 31, 20);
    public static final Register IIDR = new Register("SMMU_IIDR", 0x18, 4, RO, IIDR_IMPLEMENTER,
            IIDR_REVISION, IIDR_VARIANT, IIDR_PRODUCTID);
    public static final Field AIDR_MINOR = ro("ArchMinorRev", 3, 0);
    public static final Field AIDR_MAJOR = ro("ArchMajorRev", 7, 4);
    public static final Register AIDR = new Register("SMMU_AIDR", 0x1c, 4, RO, AIDR_MINOR, AIDR_MAJOR);

    // ---- §6.3 SMMU_CR0, §6.3 SMMU_CR0ACK
    public static final Field CR0_SMMUEN = rw("SMMUEN", 0, 0);
    public static final Field CR0_PRIQEN = rw("PRIQEN", 1, 1);
    public static final Field CR0_EVENTQEN = rw("EVENTQEN", 2, 2);
    public static final Field CR0_CMDQEN = rw("CMDQEN", 3, 3);
    public static final Field CR0_ATSCHK = rw("ATSCHK", 4, 4);
    public static final Field CR0_VMW = rw("VMW", 8, 6);
    public static final Register CR0 = new Register("SMMU_CR0", 0x20, 4, RW, CR0_SMMUEN, CR0_PRIQEN,
            CR0_EVENTQEN, CR0_CMDQEN, CR0_ATSCHK, CR0_VMW);
    public static final Register CR0ACK = new Register("SMMU_CR0ACK", 0x24, 4, RO, ro("SMMUEN", 0, 0),
            ro("PRIQEN", 1, 1), ro("EVENTQEN", 2, 2), ro("CMDQEN", 3, 3), ro("ATSCHK", 4, 4), ro("VMW", 8, 6));

    // ---- §6.3 SMMU_CR1, §6.3 SMMU_CR2
    public static final Field CR1_QUEUE_IC = rw("QUEUE_IC", 1, 0);
    public static final Field CR1_QUEUE_OC = rw("QUEUE_OC", 3, 2);
    public static final Field CR1_QUEUE_SH = rw("QUEUE_SH", 5, 4);
    public static final Field CR1_TABLE_IC = rw("TABLE_IC", 7, 6);
    public static final Field CR1_TABLE_OC = rw("TABLE_OC", 9, 8);
    public static final Field CR1_TABLE_SH = rw("TABLE_SH", 11, 10);
    public static final Register CR1 = new Register("SMMU_CR1", 0x28, 4, RW, CR1_QUEUE_IC, CR1_QUEUE_OC,
            CR1_QUEUE_SH, CR1_TABLE_IC, CR1_TABLE_OC, CR1_TABLE_SH);
    public static final Field CR2_E2H = rw("E2H", 0, 0);
    public static final Field CR2_RECINVSID = rw("RECINVSID", 1, 1);
    public static final Field CR2_PTM = rw("PTM", 2, 2);
    public static final Register CR2 = new Register("SMMU_CR2", 0x2c, 4, RW, CR2_E2H, CR2_RECINVSID, CR2_PTM);

    // ---- §6.3 SMMU_STATUSR
    public static final Register STATUSR = new Register("SMMU_STATUSR", 0x40, 4, RO, ro("DORMANT", 0, 0));

    // ---- §6.3 SMMU_GBPA: reset SHCFG = 0b01 (use incoming), ABORT = 0 (this model's IMPDEF choice)
    public static final Field GBPA_MEMATTR = rw("MemAttr", 3, 0);
    public static final Field GBPA_MTCFG = rw("MTCFG", 4, 4);
    public static final Field GBPA_ALLOCCFG = rw("ALLOCCFG", 11, 8);
    public static final Field GBPA_SHCFG = rw("SHCFG", 13, 12, 1);
    public static final Field GBPA_PRIVCFG = rw("PRIVCFG", 17, 16);
    public static final Field GBPA_INSTCFG = rw("INSTCFG", 19, 18);
    public static final Field GBPA_ABORT = rw("ABORT", 20, 20);
    public static final Field GBPA_UPDATE = rw("Update", 31, 31);
    public static final Register GBPA = new Register("SMMU_GBPA", 0x44, 4, RW, GBPA_MEMATTR, GBPA_MTCFG,
            GBPA_ALLOCCFG, GBPA_SHCFG, GBPA_PRIVCFG, GBPA_INSTCFG, GBPA_ABORT, GBPA_UPDATE);

    // ---- §6.3 SMMU_AGBPA (IMPLEMENTATION DEFINED attributes; this model implements none: RAZ/WI
    // is a permitted implementation of an all-RES0 register)
    public static final Register AGBPA = new Register("SMMU_AGBPA", 0x48, 4, RO, ro("IMPDEF", 31, 0));

    // ---- §6.3 SMMU_IRQ_CTRL, §6.3 SMMU_IRQ_CTRLACK
    public static final Field IRQ_CTRL_GERROR_IRQEN = rw("GERROR_IRQEN", 0, 0);
    public static final Field IRQ_CTRL_PRIQ_IRQEN = rw("PRIQ_IRQEN", 1, 1);
    public static final Field IRQ_CTRL_EVENTQ_IRQEN = rw("EVENTQ_IRQEN", 2, 2);
    public static final Register IRQ_CTRL = new Register("SMMU_IRQ_CTRL", 0x50, 4, RW, IRQ_CTRL_GERROR_IRQEN,
            IRQ_CTRL_PRIQ_IRQEN, IRQ_CTRL_EVENTQ_IRQEN);
    public static final Register IRQ_CTRLACK = new Register("SMMU_IRQ_CTRLACK", 0x54, 4, RO,
            ro("GERROR_IRQEN", 0, 0), ro("PRIQ_IRQEN", 1, 1), ro("EVENTQ_IRQEN", 2, 2));

    // ---- §6.3 SMMU_GERROR, §6.3 SMMU_GERRORN
    public static final Field GERROR_CMDQ_ERR = ro("CMDQ_ERR", 0, 0);
    public static final Field GERROR_EVENTQ_ABT_ERR = ro("EVENTQ_ABT_ERR", 2, 2);
    public static final Field GERROR_PRIQ_ABT_ERR = ro("PRIQ_ABT_ERR", 3, 3);
    public static final Field GERROR_MSI_CMDQ_ABT_ERR = ro("MSI_CMDQ_ABT_ERR", 4, 4);
    public static final Field GERROR_MSI_EVENTQ_ABT_ERR = ro("MSI_EVENTQ_ABT_ERR", 5, 5);
    public static final Field GERROR_MSI_PRIQ_ABT_ERR = ro("MSI_PRIQ_ABT_ERR", 6, 6);
    public static final Field GERROR_MSI_GERROR_ABT_ERR = ro("MSI_GERROR_ABT_ERR", 7, 7);
    public static final Field GERROR_SFM_ERR = ro("SFM_ERR", 8, 8);
    public static final Field GERROR_CMDQP_ERR = ro("CMDQP_ERR", 9, 9);
    public static final Register GERROR = new Register("SMMU_GERROR", 0x60, 4, RO, GERROR_CMDQ_ERR,
            GERROR_EVENTQ_ABT_ERR, GERROR_PRIQ_ABT_ERR, GERROR_MSI_CMDQ_ABT_ERR, GERROR_MSI_EVENTQ_ABT_ERR,
            GERROR_MSI_PRIQ_ABT_ERR, GERROR_MSI_GERROR_ABT_ERR, GERROR_SFM_ERR, GERROR_CMDQP_ERR);
    public static final Register GERRORN = new Register("SMMU_GERRORN", 0x64, 4, RW, rw("CMDQ_ERR", 0, 0),
            rw("EVENTQ_ABT_ERR", 2, 2), rw("PRIQ_ABT_ERR", 3, 3), rw("MSI_CMDQ_ABT_ERR", 4, 4),
            rw("MSI_EVENTQ_ABT_ERR", 5, 5), rw("MSI_PRIQ_ABT_ERR", 6, 6), rw("MSI_GERROR_ABT_ERR", 7, 7),
            rw("SFM_ERR", 8, 8), rw("CMDQP_ERR", 9, 9));

    // ---- §6.3 SMMU_GERROR_IRQ_CFG0-2, SMMU_EVENTQ_IRQ_CFG0-2, SMMU_PRIQ_IRQ_CFG0-2
    public static final Field IRQ_CFG0_ADDR = rw("ADDR", 51, 2);
    public static final Field IRQ_CFG1_DATA = rw("DATA", 31, 0);
    public static final Field IRQ_CFG2_MEMATTR = rw("MemAttr", 3, 0);
    public static final Field IRQ_CFG2_SH = rw("SH", 5, 4);

    private static Register cfg0(String n, int off) {
        return new Register(n, off, 8, RW, rw("ADDR", 51, 2));
    }

    private static Register cfg1(String n, int off) {
        return new Register(n, off, 4, RW, rw("DATA", 31, 0));
    }

    private static Register cfg2(String n, int off) {
        return new Register(n, off, 4, RW, rw("MemAttr", 3, 0), rw("SH", 5, 4));
    }

    public static final Register GERROR_IRQ_CFG0 = cfg0("SMMU_GERROR_IRQ_CFG0", 0x68);
    public static final Register GERROR_IRQ_CFG1 = cfg1("SMMU_GERROR_IRQ_CFG1", 0x70);
    public static final Register GERROR_IRQ_CFG2 = cfg2("SMMU_GERROR_IRQ_CFG2", 0x74);

    // ---- §6.3 SMMU_STRTAB_BASE, §6.3 SMMU_STRTAB_BASE_CFG
    public static final Field STRTAB_BASE_ADDR = rw("ADDR", 51, 6);
    public static final Field STRTAB_BASE_RA = rw("RA", 62, 62);
    public static final Register STRTAB_BASE = new Register("SMMU_STRTAB_BASE", 0x80, 8, RW, STRTAB_BASE_ADDR,
            STRTAB_BASE_RA);
    public static final Field STRTAB_BASE_CFG_LOG2SIZE = rw("LOG2SIZE", 5, 0);
    public static final Field STRTAB_BASE_CFG_SPLIT = rw("SPLIT", 10, 6);
    public static final Field STRTAB_BASE_CFG_FMT = rw("FMT", 17, 16);
    public static final Register STRTAB_BASE_CFG = new Register("SMMU_STRTAB_BASE_CFG", 0x88, 4, RW,
            STRTAB_BASE_CFG_LOG2SIZE, STRTAB_BASE_CFG_SPLIT, STRTAB_BASE_CFG_FMT);

    // ---- §6.3 SMMU_CMDQ_*, SMMU_EVENTQ_*, SMMU_PRIQ_*
    public static final Field Q_BASE_LOG2SIZE = rw("LOG2SIZE", 4, 0);
    public static final Field Q_BASE_ADDR = rw("ADDR", 51, 5);
    /** RA for the command queue, WA for the event and PRI queues. */
    public static final Field Q_BASE_ALLOC = rw("RA/WA", 62, 62);
    /** Index and wrap: the low LOG2SIZE + 1 bits of the 20-bit pointer field. */
    public static final Field Q_PTR = rw("WR/RD", 19, 0);
    public static final Field CMDQ_CONS_ERR = rw("ERR", 30, 24);
    /** EVENTQ_PROD.OVFLG / PRIQ_PROD.OVFLG. */
    public static final Field Q_PROD_OVFLG = rw("OVFLG", 31, 31);
    /** EVENTQ_CONS.OVACKFLG / PRIQ_CONS.OVACKFLG. */
    public static final Field Q_CONS_OVACKFLG = rw("OVACKFLG", 31, 31);

    private static Register qbase(String n, int off, String alloc) {
        return new Register(n, off, 8, RW, rw("LOG2SIZE", 4, 0), rw("ADDR", 51, 5), rw(alloc, 62, 62));
    }

    public static final Register CMDQ_BASE = qbase("SMMU_CMDQ_BASE", 0x90, "RA");
    public static final Register CMDQ_PROD = new Register("SMMU_CMDQ_PROD", 0x98, 4, RW, rw("WR", 19, 0));
    // CMDQ_CONS is written by software only while CMDQEN == 0 (§6.3 SMMU_CMDQ_CONS); ERR is read-only.
    public static final Register CMDQ_CONS = new Register("SMMU_CMDQ_CONS", 0x9c, 4, RW, rw("RD", 19, 0),
            ro("ERR", 30, 24));
    public static final Register EVENTQ_BASE = qbase("SMMU_EVENTQ_BASE", 0xa0, "WA");
    // The SMMU writes EVENTQ_PROD; software may write it only while EVENTQEN == 0 (§6.3 SMMU_EVENTQ_PROD).
    public static final Register EVENTQ_PROD = new Register("SMMU_EVENTQ_PROD", PAGE1 + 0xa8, 4, RW,
            rw("WR", 19, 0), rw("OVFLG", 31, 31));
    public static final Register EVENTQ_CONS = new Register("SMMU_EVENTQ_CONS", PAGE1 + 0xac, 4, RW,
            rw("RD", 19, 0), rw("OVACKFLG", 31, 31));
    public static final Register EVENTQ_IRQ_CFG0 = cfg0("SMMU_EVENTQ_IRQ_CFG0", 0xb0);
    public static final Register EVENTQ_IRQ_CFG1 = cfg1("SMMU_EVENTQ_IRQ_CFG1", 0xb8);
    public static final Register EVENTQ_IRQ_CFG2 = cfg2("SMMU_EVENTQ_IRQ_CFG2", 0xbc);
    public static final Register PRIQ_BASE = qbase("SMMU_PRIQ_BASE", 0xc0, "WA");
    public static final Register PRIQ_PROD = new Register("SMMU_PRIQ_PROD", PAGE1 + 0xc8, 4, RW,
            rw("WR", 19, 0), rw("OVFLG", 31, 31));
    public static final Register PRIQ_CONS = new Register("SMMU_PRIQ_CONS", PAGE1 + 0xcc, 4, RW,
            rw("RD", 19, 0), rw("OVACKFLG", 31, 31));
    public static final Register PRIQ_IRQ_CFG0 = cfg0("SMMU_PRIQ_IRQ_CFG0", 0xd0);
    public static final Register PRIQ_IRQ_CFG1 = cfg1("SMMU_PRIQ_IRQ_CFG1", 0xd8);
    /** PRIQ_IRQ_CFG2.LO: interrupt only for entries with Last == 1. */
    public static final Field PRIQ_IRQ_CFG2_LO = rw("LO", 31, 31);
    public static final Register PRIQ_IRQ_CFG2 = new Register("SMMU_PRIQ_IRQ_CFG2", 0xdc, 4, RW, rw("MemAttr", 3, 0),
            rw("SH", 5, 4), PRIQ_IRQ_CFG2_LO);

    /**
     * Page-0 offsets 0xA8/0xAC/0xC8/0xCC: IHI 0070 §6.2.1 permits them to alias the page-1 queue
     * pointers; this model aliases them (as QEMU does), so drivers with the page-0-only quirk work.
     */
    public static final int PAGE0_ALIAS_LO = 0xa8;

    /** Every register of the window, for the register file and the tests. */
    public static final List<Register> ALL = List.of(IDR0, IDR1, IDR2, IDR3, IDR4, IDR5, IIDR, AIDR, CR0, CR0ACK,
            CR1, CR2, STATUSR, GBPA, AGBPA, IRQ_CTRL, IRQ_CTRLACK, GERROR, GERRORN, GERROR_IRQ_CFG0,
            GERROR_IRQ_CFG1, GERROR_IRQ_CFG2, STRTAB_BASE, STRTAB_BASE_CFG, CMDQ_BASE, CMDQ_PROD, CMDQ_CONS,
            EVENTQ_BASE, EVENTQ_PROD, EVENTQ_CONS, EVENTQ_IRQ_CFG0, EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG2, PRIQ_BASE,
            PRIQ_PROD, PRIQ_CONS, PRIQ_IRQ_CFG0, PRIQ_IRQ_CFG1, PRIQ_IRQ_CFG2);

    /** Whether {@code a} is declared read-only as a whole. */
    static boolean readOnly(Register r) {
        return r.access() == Access.RO;
    }
}
