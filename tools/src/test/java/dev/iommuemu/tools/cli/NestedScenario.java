package dev.iommuemu.tools.cli;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;

import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.smmuv3.Harness;
import dev.iommuemu.smmuv3.PageTables;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * An SMMUv3 session programmed over the control API alone, as a protobuf-only client would:
 * stream {@link #SID} nested (STE.Config 0b111, IHI 0070 §5.2) with its CD and stage 1 tables in
 * IPA space, stage 2 mapping IPA 0x4000_0000 + 2 MiB to PA 0x80_0000. {@link #VA} walks stage 1 to
 * IPA {@link #IPA}, which stage 2 does not map: a stage 2 F_TRANSLATION, CLASS IN, at level 2.
 * {@link #MAPPED} translates; {@link #UNMAPPED} is a stage 1 fault at level 3.
 */
final class NestedScenario {
    static final int SID = 5;
    static final long STRTAB = 0x1_0000;
    static final long EVTQ = 0x2_0000;
    static final long CMDQ = 0x3_0000;
    static final long S2_L1 = 0x10_0000;
    static final long S2_L2 = 0x10_1000;
    static final long IPA_BASE = 0x4000_0000L;
    static final long PA_BASE = 0x80_0000L;
    static final long S1_L0 = IPA_BASE + 0x1_0000;
    static final long S1_L1 = IPA_BASE + 0x1_1000;
    static final long S1_L2 = IPA_BASE + 0x1_2000;
    static final long S1_L3 = IPA_BASE + 0x1_3000;
    static final long CD = IPA_BASE + 0x1000;
    static final long VA = 0x1_2345_6000L;
    static final long IPA = 0x5000_0000L;
    static final long MAPPED = VA + 0x1000;
    static final long UNMAPPED = VA + 0x2000;

    private NestedScenario() {}

    private static byte[] le(long... words) {
        ByteBuffer b = ByteBuffer.allocate(8 * words.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long w : words) {
            b.putLong(w);
        }
        return b.array();
    }

    private static long pa(long ipa) {
        return ipa - IPA_BASE + PA_BASE;
    }

    private static void put(ControlClient c, long session, long pa, long... words) throws Exception {
        c.writeMemory(session, pa, le(words));
    }

    /** Creates the session, gives it 16 MiB at 0, programs it and enables the SMMU; returns its id. */
    static long create(ControlClient c) throws Exception {
        long s = c.createSession("smmuv3", "default").getId();
        c.addMemory(s, 0, 16 << 20);
        // stage 2 (4K granule, S2T0SZ 24, start level 1): IPA 0x4000_0000 + 2 MiB -> PA 0x80_0000, one block
        put(c, s, S2_L1 + 8 * 1, S2_L2 | PageTables.PAGE);
        put(c, s, S2_L2, PA_BASE | PageTables.S2_RW | PageTables.BLOCK);
        // stage 1 (48-bit VA, 4 levels) in IPA space: VA -> IPA, VA + 0x1000 -> IPA_BASE + 0x10_0000
        put(c, s, pa(S1_L0) + 8 * ((VA >>> 39) & 511), S1_L1 | PageTables.PAGE);
        put(c, s, pa(S1_L1) + 8 * ((VA >>> 30) & 511), S1_L2 | PageTables.PAGE);
        put(c, s, pa(S1_L2) + 8 * ((VA >>> 21) & 511), S1_L3 | PageTables.PAGE);
        put(c, s, pa(S1_L3) + 8 * ((VA >>> 12) & 511), IPA | PageTables.S1_RW | PageTables.PAGE,
                (IPA_BASE + 0x10_0000L) | PageTables.S1_RW | PageTables.PAGE);
        put(c, s, pa(CD), Harness.cd(S1_L0, 3));
        long[] ste = Harness.s2Ste(S2_L1, 4);
        Ste.CONFIG.set(ste, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(ste, CD >>> 6);
        put(c, s, STRTAB + 64L * SID, ste);
        // IHI 0070 §6.3: stream table (linear, 16 STEs), queues of 16 entries, then SMMUEN
        c.writeRegister(s, STRTAB_BASE.offset(), 8, STRTAB);
        c.writeRegister(s, STRTAB_BASE_CFG.offset(), 4, 4);
        c.writeRegister(s, CMDQ_BASE.offset(), 8, CMDQ | 4);
        c.writeRegister(s, EVENTQ_BASE.offset(), 8, EVTQ | 4);
        long cr0 = CR0_CMDQEN.mask() | CR0_EVENTQEN.mask();
        c.writeRegister(s, CR0.offset(), 4, cr0);
        c.writeRegister(s, CR0.offset(), 4, cr0 | CR0_SMMUEN.mask());
        return s;
    }
}
