package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.IDR3;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.pagetable.Descriptor;
import dev.iommuemu.pagetable.MemoryAttributes;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.inspect.WalkExplanation;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * STE.S2FWB (IHI 0070 §5.2) and SMMU_IDR3.FWB (§6.3.4) through the whole model: the STE check, the
 * memory attributes of stage 1, stage 2 and nested translations (Arm ARM D8.6), and where the
 * model reports them (STE decode, walk explanation, {@link Smmuv3#memoryAttributes}).
 */
class S2fwbTest {
    private static final int SID = 3;
    private static final long VA = 0x10_0000L;
    private static final long OUT = 0x2000_0000L;

    /** A stage 2 leaf: AF, S2AP read/write, SH Inner Shareable, the given MemAttr[3:0]. */
    private static long s2Leaf(int memAttr) {
        return Descriptor.AF.prep(1) | Descriptor.S2AP_R.prep(1) | Descriptor.S2AP_W.prep(1) | Descriptor.SH.prep(0b11)
                | Descriptor.S2_MEMATTR.prep(memAttr);
    }

    /**
     * A nested stream: stage 1 maps VA to OUT (AttrIndx 0, SH Inner) under a CD whose MAIR is
     * {@code mair}; stage 2 maps IPA 0-1 GiB one to one with one 1 GiB block of MemAttr
     * {@code s2MemAttr}; STE.S2FWB = {@code fwb}.
     */
    private static Harness nested(Smmuv3Profile p, long mair, int s2MemAttr, boolean fwb) {
        Harness h = new Harness(p).enable();
        long root = h.tables.s1Root();
        h.tables.map(root, VA, OUT, PageTables.S1_RW);
        long[] cd = Harness.cd(root, 1);
        Cd.MAIR.set(cd, mair);
        h.cd(Harness.CDS, cd);
        long s2 = h.tables.s2Root(24, 1);
        h.tables.map(s2, 0, 0, s2Leaf(s2MemAttr), 1);
        long[] ste = Harness.s2Ste(s2, 4);
        Ste.CONFIG.set(ste, Ste.CONFIG_NESTED);
        Ste.S1CONTEXTPTR.set(ste, Harness.CDS >>> 6);
        Ste.S2FWB.set(ste, fwb);
        h.ste(SID, ste);
        return h;
    }

    private static MemoryAttributes attrs(Harness h) {
        return h.smmu.memoryAttributes(SID, -1, VA, DmaAccess.READ);
    }

    @Test
    void idr3FwbIsAdvertisedByMaxAndNestingHostOnly() {
        assertFalse(Smmuv3Profile.DEFAULT.fwb());
        assertTrue(Smmuv3Profile.MAX.fwb());
        assertTrue(Smmuv3Profile.MAX52.fwb());
        assertFalse(Smmuv3Profile.S1_ONLY.fwb());
        Smmuv3Profile n = Smmuv3Profile.named("nesting-host");
        assertTrue(n.fwb() && n.s1() && n.s2() && n.cd2l());
        assertEquals(16, n.ssidBits());
        assertEquals(0x2, n.aidr() & 0xf, "SMMUv3.2: FWB is RES0 before it (§6.3.4)");
        assertEquals(1L << 8, new Harness(Smmuv3Profile.MAX).read(IDR3.offset()) & (1L << 8), "IDR3.FWB bit 8");
        assertEquals(0L, new Harness(Smmuv3Profile.DEFAULT).read(IDR3.offset()) & (1L << 8));
    }

    @Test
    void s2fwbWithoutIdr3FwbIsCBadSte() {
        Harness h = nested(Smmuv3Profile.DEFAULT, 0xff, 0b1111, true);
        assertInstanceOf(DmaResult.Aborted.class, h.smmu.translate(SID, -1, VA, DmaAccess.READ));
        List<long[]> raw = h.rawEvents();
        assertEquals(1, raw.size());
        assertEquals(0x04L | ((long) SID << 32), raw.get(0)[0], "C_BAD_STE (0x04) for StreamID 3, byte for byte");
        assertEquals("C_BAD_STE: S2FWB without IDR3.FWB", h.smmu.inspectSte(SID).error());
        // A stage 1-only STE with the RES0 bit set is ILLEGAL too.
        long[] s1 = Harness.s1Ste(Harness.CDS, 0);
        Ste.S2FWB.set(s1, 1);
        h.ste(SID + 1, s1);
        h.smmu.translate(SID + 1, -1, VA, DmaAccess.READ);
        List<EventRecord> more = h.events(); // the records after the ones read above
        assertEquals(1, more.size());
        EventRecord e = more.get(0);
        assertEquals(EventType.C_BAD_STE, e.type());
        assertEquals(SID + 1, e.streamId());
        // Without S2FWB the same STE translates on the same SMMU.
        Harness ok = nested(Smmuv3Profile.DEFAULT, 0xff, 0b1111, false);
        assertEquals(OUT + 0x34, ((DmaResult.Translated) ok.smmu.translate(SID, -1, VA + 0x34, DmaAccess.READ))
                .entry().translate(VA + 0x34));
    }

    @Test
    void stageTwoForcesWriteBackOverANonCacheableGuestOnlyWithFwb() {
        // The guest's stage 1 says Normal Non-cacheable (MAIR Attr0 0x44); the nest parent's MemAttr 0b0110.
        Harness fwb = nested(Smmuv3Profile.MAX, 0x44, 0b0110, true);
        assertEquals(OUT + 0x10, ((DmaResult.Translated) fwb.smmu.translate(SID, -1, VA + 0x10, DmaAccess.WRITE))
                .entry().translate(VA + 0x10));
        // Arm ARM Table D8-101: 0b110 is Normal Write-Back whatever stage 1 says.
        assertEquals("Normal iWB oWB OSH", attrs(fwb).toString());
        assertEquals(1L, fwb.smmu.inspectSte(SID).layout().decode(fwb.smmu.inspectSte(SID).words()).get("S2FWB"),
                "the STE decode shows S2FWB");
        // The walk explanation: the TLB entry the write filled answers, with the attributes it was
        // filled with; the tables walked now give the same.
        WalkExplanation e = fwb.smmu.explain(SID, -1, VA, DmaAccess.READ);
        assertEquals(WalkExplanation.DecidedBy.TLB, e.decidedBy());
        assertEquals(OUT, e.result().entry().translate(VA));
        assertEquals(0xfffL, e.result().entry().addrMask(), "a 4 KiB page (2^12)");
        assertEquals("Normal iWB oWB OSH", e.attributes().toString());
        assertEquals("Normal iWB oWB OSH", e.tables().attributes().toString());
        // Without FWB, 0b0110 is outer Non-cacheable, inner Write-Through (Table D8-96), and combined
        // with a Non-cacheable stage 1 the result stays Non-cacheable (Table D8-98).
        Harness plain = nested(Smmuv3Profile.MAX, 0x44, 0b0110, false);
        assertEquals("Normal iNC oNC OSH", attrs(plain).toString());
        WalkExplanation walked = plain.smmu.explain(SID, -1, VA, DmaAccess.READ);
        assertEquals(WalkExplanation.DecidedBy.TRANSLATION_TABLES, walked.decidedBy());
        assertEquals("Normal iNC oNC OSH", walked.result().attributes().toString());
        assertNull(walked.tables(), "no TLB entry: the walk is the answer");
    }

    @Test
    void fwbDeviceAndStageOneEncodings() {
        // FWB MemAttr 0b001: Device-nGnRE over a Write-Back stage 1 (Table D8-100).
        assertEquals(MemoryAttributes.device(MemoryAttributes.MemoryType.DEVICE_nGnRE),
                attrs(nested(Smmuv3Profile.MAX, 0xff, 0b0001, true)));
        // FWB MemAttr 0b111: stage 1's own (MAIR 0xbb: Write-Through, SH Inner).
        assertEquals("Normal iWT oWT ISH", attrs(nested(Smmuv3Profile.MAX, 0xbb, 0b0111, true)).toString());
        // FWB MemAttr 0b101 over stage 1 Device-GRE: stage 1's Device type stays.
        assertEquals("Device-GRE", attrs(nested(Smmuv3Profile.MAX, 0x0c, 0b0101, true)).toString());
        // Without FWB, 0b0111 is outer NC inner WB: with stage 1 WT the inner is WT, the outer NC.
        assertEquals("Normal iWT oNC ISH", attrs(nested(Smmuv3Profile.MAX, 0xbb, 0b0111, false)).toString());
        // The AttrIndx of the stage 1 leaf selects the MAIR byte: AttrIndx 2 -> Attr2 = 0x04.
        Harness h = nested(Smmuv3Profile.MAX, 0x04_0000L | 0xff, 0b1111, false);
        long root = Cd.of(h.smmu.inspectCd(SID, -1).words()).ttb0();
        h.tables.map(root, VA + 0x1000, OUT + 0x1000, PageTables.S1_RW | Descriptor.ATTR_INDX.prep(2));
        assertEquals("Device-nGnRE", h.smmu.memoryAttributes(SID, -1, VA + 0x1000, DmaAccess.READ).toString());
        assertEquals("Normal iWB oWB ISH", attrs(h).toString());
    }

    @Test
    void stage2OnlyCombinesWithTheIncomingAttributes() {
        // Stage 1 bypassed: stage 2 combines with the transaction's own attributes, which this
        // model takes as Normal iWB oWB ISH (MemoryAttributes.INCOMING).
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        long s2 = h.tables.s2Root(24, 1);
        h.tables.map(s2, 0, 0, s2Leaf(0b0111), 1);
        long[] ste = Harness.s2Ste(s2, 4);
        h.ste(SID, ste);
        assertEquals("Normal iWB oNC ISH", attrs(h).toString(), "FWB off: 0b0111 is outer NC, inner WB");
        Ste.S2FWB.set(ste, 1);
        h.ste(SID, ste);
        h.cfgiSte(SID);
        assertEquals(MemoryAttributes.INCOMING, attrs(h), "FWB on: 0b111 keeps the incoming attributes");
    }

    @Test
    void noAttributesWithoutATableWalk() {
        Harness h = new Harness(Smmuv3Profile.MAX).enable();
        h.ste(SID, Harness.words(8, Ste.V, 1, Ste.CONFIG, Ste.CONFIG_BYPASS));
        assertNull(attrs(h));
        h.ste(SID, Harness.words(8, Ste.V, 1, Ste.CONFIG, 0));
        assertNull(attrs(h));
        // A walk fault (stage 1 maps nothing at VA + 1 MiB), and SMMUEN == 0 (GBPA decides).
        Harness n = nested(Smmuv3Profile.MAX, 0xff, 0b1111, false);
        WalkExplanation fault = n.smmu.explain(SID, -1, VA + 0x10_0000L, DmaAccess.READ);
        assertEquals("F_TRANSLATION", fault.result().fault().type());
        assertNull(fault.attributes());
        assertNull(new Harness(Smmuv3Profile.MAX).smmu.memoryAttributes(SID, -1, VA, DmaAccess.READ));
    }
}
