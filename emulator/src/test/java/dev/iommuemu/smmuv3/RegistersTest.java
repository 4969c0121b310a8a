package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.field.Register;
import dev.iommuemu.smmuv3.cmdq.CommandQueue;
import dev.iommuemu.smmuv3.irq.Interrupts;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.queue.QueueGeometry;
import org.junit.jupiter.api.Test;

/** IHI 0070 §6.2 access rules and §6.3 register behaviour, through mmioRead/mmioWrite. */
class RegistersTest {
    private final Harness h = new Harness(Smmuv3Profile.MAX);

    @Test
    void resetValuesComeFromTheProfileAndTheSpec() {
        Smmuv3Profile p = Smmuv3Profile.MAX;
        assertEquals(p.idr0() & 0xffff_ffffL, h.read(0x0));
        assertEquals(p.idr1() & 0xffff_ffffL, h.read(0x4));
        assertEquals(p.idr5() & 0xffff_ffffL, h.read(0x14));
        assertEquals(0x02, h.read(0x1c)); // AIDR: SMMUv3.2
        // MAX: S1P S2P TTF=AArch64 COHACC HTTU=2 Hyp ATS NS1ATS ASID16 MSI SEV PRI VMID16 CD2L TTENDIAN=LE
        // TERM_MODEL ST_LEVEL=2lvl
        assertEquals(0x0c4d_7e9bL, h.read(0x0));
        assertEquals(0x1000, h.read(GBPA.offset())); // §6.3 SMMU_GBPA: SHCFG resets to 0b01
        for (Register r : ALL) {
            if (r.name().startsWith("SMMU_IDR") || r == IIDR || r == AIDR || r == GBPA) {
                continue;
            }
            assertEquals(0, h.smmu.mmioRead(r.offset(), r.size()), r.name());
        }
    }

    @Test
    void idr0OfTheDefaultProfileMatchesWhatQemuAdvertises() {
        Harness d = new Harness(Smmuv3Profile.DEFAULT);
        // S1P S2P TTF=0b10 COHACC ASID16 VMID16 TTENDIAN=0b10 STALL_MODEL=0b01 TERM_MODEL ST_LEVEL=0b01
        long expect = 1 | 2 | (2 << 2) | (1 << 4) | (1 << 12) | (1 << 18) | (2 << 21) | (1 << 24) | (1 << 26) | (1 << 27);
        assertEquals(expect, d.read(0x0));
        assertEquals(16 | (19 << 16) | (19 << 21), d.read(0x4)); // SIDSIZE 16, EVENTQS 19, CMDQS 19
        assertEquals(4 | (1 << 4) | (1 << 5) | (1 << 6), d.read(0x14)); // OAS 44, all granules
    }

    @Test
    void reservedOffsetsAndIllegalAccessesAreRazWi() {
        for (int off : new int[] {0x30, 0x3c, 0x4c, 0x58, 0x100, 0xe00, 0x1000, 0x10000, 0x1fffc}) {
            h.write(off, 0xffff_ffffL);
            assertEquals(0, h.read(off), Integer.toHexString(off));
        }
        h.write(CR1.offset(), 0xd75);
        assertEquals(0xd75, h.read(CR1.offset()));
        assertEquals(0, h.smmu.mmioRead(CR1.offset(), 2)); // unsupported size
        assertEquals(0, h.smmu.mmioRead(CR1.offset() + 1, 4)); // unaligned
        assertEquals(0, h.smmu.mmioRead(CR0.offset(), 8)); // 64-bit access to two 32-bit registers
        h.smmu.mmioWrite(CR1.offset(), 8, 0);
        assertEquals(0xd75, h.read(CR1.offset()));
        h.write(IDR0.offset(), 0); // read-only
        assertEquals(Smmuv3Profile.MAX.idr0() & 0xffff_ffffL, h.read(IDR0.offset()));
    }

    @Test
    void sixtyFourBitRegistersTakeBothHalvesAndKeepOnlyTheirFields() {
        h.write(STRTAB_BASE.offset(), 0x1234_5fffL); // ADDR[51:6]: bits [5:0] are RES0
        h.write(STRTAB_BASE.offset() + 4, 0xffff_ffffL); // RA bit 62, ADDR up to 51
        assertEquals(0x400f_ffff_1234_5fc0L, h.smmu.mmioRead(STRTAB_BASE.offset(), 8));
        assertEquals(0x1234_5fc0L, h.read(STRTAB_BASE.offset()));
        assertEquals(0x400f_ffffL, h.read(STRTAB_BASE.offset() + 4));
        h.write64(CMDQ_BASE.offset(), -1L);
        assertEquals(0x400f_ffff_ffff_ffffL, h.smmu.mmioRead(CMDQ_BASE.offset(), 8)); // LOG2SIZE, ADDR[51:5], RA
    }

    @Test
    void cr0AndIrqCtrlHandshakes() {
        h.write(CR0.offset(), 0b1111 | (1 << 4));
        assertEquals(0b11111, h.read(CR0ACK.offset())); // §6.3 SMMU_CR0ACK: CR0ACK follows CR0
        h.write(IRQ_CTRL.offset(), 0b101);
        assertEquals(0b101, h.read(IRQ_CTRLACK.offset()));
        Harness noPri = new Harness(Smmuv3Profile.DEFAULT);
        noPri.write(CR0.offset(), 0b11111);
        assertEquals(0b01101, noPri.read(CR0ACK.offset())); // PRIQEN, ATSCHK absent: stay 0
    }

    @Test
    void gbpaChangesOnlyWithUpdateAndCompletesAtOnce() {
        h.write(GBPA.offset(), GBPA_ABORT.mask());
        assertEquals(0x1000, h.read(GBPA.offset()));
        h.write(GBPA.offset(), GBPA_UPDATE.mask() | GBPA_ABORT.mask() | 0x1000);
        assertEquals(GBPA_ABORT.mask() | 0x1000, h.read(GBPA.offset())); // Update reads 0 when done
    }

    @Test
    void gerrorToggleSemanticsAndTheCommandQueueHalt() {
        h.enable();
        h.cmd(new long[] {0xff, 0}); // no such opcode
        assertEquals(1, h.read(GERROR.offset()) & 1);
        long cons = h.read(CMDQ_CONS.offset());
        assertEquals(CommandQueue.CERROR_ILL, CMDQ_CONS_ERR.get(cons));
        assertEquals(0, Q_PTR.get(cons)); // CONS stays on the failing command
        assertEquals(1, h.host.count(Interrupts.GERROR));
        // A second error while CMDQ_ERR is active is not a new toggle.
        h.cmd(new long[] {0xfe, 0});
        assertEquals(1, h.read(GERROR.offset()) & 1);
        // Software repairs the command in place and acknowledges by toggling GERRORN.
        h.mem.put64(Harness.CMDQ, 0x46); // CMD_SYNC
        h.mem.put64(Harness.CMDQ + 16, 0x46);
        h.write(GERRORN.offset(), 1);
        assertEquals(2, Q_PTR.get(h.read(CMDQ_CONS.offset())));
        assertEquals(1, h.read(GERROR.offset()) & 1); // GERROR keeps its value; inactive as GERROR == GERRORN
        h.cmd(new long[] {0xfd, 0});
        assertEquals(0, h.read(GERROR.offset()) & 1); // a new error toggles it back
        assertEquals(2, h.host.count(Interrupts.GERROR));
    }

    @Test
    void queueSizesAreCappedByIdr1() {
        QueueGeometry q = QueueGeometry.of(0x10_0000L | 25, 19, 16);
        assertEquals(19, q.log2size());
        assertEquals((2 << 19) - 1, q.pointerMask());
        QueueGeometry small = QueueGeometry.of(0x10_0000L | 2, 19, 16);
        assertEquals(small.next(0b011), 0b100); // index wraps, wrap bit toggles
        assertEquals(small.next(0b111), 0b000);
        org.junit.jupiter.api.Assertions.assertTrue(small.full(0b100, 0b000));
        org.junit.jupiter.api.Assertions.assertTrue(small.empty(0b101, 0b101));
    }

    @Test
    void pageOneQueuePointersAndTheirPageZeroAliases() {
        h.write(PAGE1 + 0xac, 5);
        assertEquals(5, h.read(0xac));
        h.write(0xcc, 3);
        assertEquals(3, h.read(PAGE1 + 0xcc));
    }

    @Test
    void guardedRegistersIgnoreWritesWhileEnabled() {
        h.enable();
        h.write64(STRTAB_BASE.offset(), 0x5000_0000L);
        assertEquals(Harness.STRTAB, h.smmu.mmioRead(STRTAB_BASE.offset(), 8));
        h.write64(CMDQ_BASE.offset(), 0);
        assertEquals(Harness.CMDQ | Harness.CMDQ_LOG2, h.smmu.mmioRead(CMDQ_BASE.offset(), 8));
    }

    @Test
    void registersOfAbsentFeaturesAreRes0() {
        Harness d = new Harness(Smmuv3Profile.DEFAULT);
        d.write64(PRIQ_BASE.offset(), 0x1000);
        assertEquals(0, d.smmu.mmioRead(PRIQ_BASE.offset(), 8));
        d.write64(EVENTQ_IRQ_CFG0.offset(), 0x1000); // no MSI in the default profile
        assertEquals(0, d.smmu.mmioRead(EVENTQ_IRQ_CFG0.offset(), 8));
    }
}
