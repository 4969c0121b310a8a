package dev.iommuemu.pagetable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.Perm;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The permission matrices, as tables: stage 1 data access permissions (Arm ARM D8.4.1 AP[2:1],
 * D8.4.2 hierarchical APTable), execute-never (PXN, UXN, PXNTable, UXNTable, "EL0-writable
 * implies PXN", SCTLR.WXN / IHI 0070 §5.4 CD.WXN), CD.PAN; stage 2 S2AP and XN[1:0] with and
 * without FEAT_XNX (Arm ARM D8.4.3); the single-privilege EL2 regime. Every cell is checked
 * both as the Translation's perm bits and as the outcome of each of the six access kinds.
 */
class PermissionVectorsTest {
    private static final DmaAccess[] ACCESSES = {DmaAccess.PRIV_READ, DmaAccess.PRIV_WRITE, DmaAccess.PRIV_EXEC,
        DmaAccess.READ, DmaAccess.WRITE, DmaAccess.EXEC};
    private static final long VA = 0x40_1234_5000L;

    // AP[2:1], APTable[1:0] -> privileged data, unprivileged data (Arm ARM D8.4.1, D8.4.2:
    // APTable[0] removes EL0 access, APTable[1] removes write access at subsequent levels).
    private static final String[][] S1_DATA = {
        {"00", "00", "rw", "--"}, {"00", "01", "rw", "--"}, {"00", "10", "r-", "--"}, {"00", "11", "r-", "--"},
        {"01", "00", "rw", "rw"}, {"01", "01", "rw", "--"}, {"01", "10", "r-", "r-"}, {"01", "11", "r-", "--"},
        {"10", "00", "r-", "--"}, {"10", "01", "r-", "--"}, {"10", "10", "r-", "--"}, {"10", "11", "r-", "--"},
        {"11", "00", "r-", "r-"}, {"11", "01", "r-", "--"}, {"11", "10", "r-", "r-"}, {"11", "11", "r-", "--"},
    };

    // Privileged-writable, EL0-writable, WXN, PXN or PXNTable, UXN or UXNTable -> PX, UX.
    // EL0-writable memory is never privileged-executable; with WXN, memory writable at an
    // exception level is not executable at that level (Arm ARM AArch64 permission checks).
    private static final String[][] S1_EXEC = {
        // pw   uw   WXN  PXN' UXN'  -> PX UX
        {"-", "-", "-", "-", "-", "PX UX"}, {"-", "-", "-", "-", "U", "PX --"},
        {"-", "-", "-", "P", "-", "-- UX"}, {"-", "-", "-", "P", "U", "-- --"},
        {"-", "-", "W", "-", "-", "PX UX"}, {"-", "-", "W", "-", "U", "PX --"},
        {"-", "-", "W", "P", "-", "-- UX"}, {"-", "-", "W", "P", "U", "-- --"},
        {"w", "-", "-", "-", "-", "PX UX"}, {"w", "-", "-", "-", "U", "PX --"},
        {"w", "-", "-", "P", "-", "-- UX"}, {"w", "-", "-", "P", "U", "-- --"},
        {"w", "-", "W", "-", "-", "-- UX"}, {"w", "-", "W", "-", "U", "-- --"},
        {"w", "-", "W", "P", "-", "-- UX"}, {"w", "-", "W", "P", "U", "-- --"},
        {"w", "w", "-", "-", "-", "-- UX"}, {"w", "w", "-", "-", "U", "-- --"},
        {"w", "w", "-", "P", "-", "-- UX"}, {"w", "w", "-", "P", "U", "-- --"},
        {"w", "w", "W", "-", "-", "-- --"}, {"w", "w", "W", "-", "U", "-- --"},
        {"w", "w", "W", "P", "-", "-- --"}, {"w", "w", "W", "P", "U", "-- --"},
    };

    private static int bit(String s, int i) {
        return s.charAt(i) - '0';
    }

    @Test
    void stage1PermissionMatrix() {
        Map<String, String> exec = new HashMap<>();
        for (String[] r : S1_EXEC) {
            exec.put(r[0] + r[1] + r[2] + r[3] + r[4], r[5]);
        }
        int cells = 0;
        for (String[] row : S1_DATA) {
            for (int leafXn = 0; leafXn < 4; leafXn++) {
                for (int tableXn = 0; tableXn < 4; tableXn++) {
                    for (boolean wxn : new boolean[] {false, true}) {
                        for (boolean pan : new boolean[] {false, true}) {
                            boolean pxn = (leafXn & 1) != 0;
                            boolean uxn = (leafXn & 2) != 0;
                            boolean pxnTable = (tableXn & 1) != 0;
                            boolean uxnTable = (tableXn & 2) != 0;
                            boolean pr = true;
                            boolean pw = row[2].charAt(1) == 'w';
                            boolean ur = row[3].charAt(0) == 'r';
                            boolean uw = row[3].charAt(1) == 'w';
                            String x = exec.get((pw ? "w" : "-") + (uw ? "w" : "-") + (wxn ? "W" : "-")
                                    + (pxn || pxnTable ? "P" : "-") + (uxn || uxnTable ? "U" : "-"));
                            if (pan && (ur || uw)) {
                                pr = false; // IHI 0070 §5.4 CD.PAN: no privileged data access to EL0-accessible pages
                                pw = false;
                            }
                            int want = (pr ? Perm.PR : 0) | (pw ? Perm.PW : 0) | (ur ? Perm.UR : 0) | (uw ? Perm.UW : 0)
                                    | (x.startsWith("PX") ? Perm.PX : 0) | (x.endsWith("UX") ? Perm.UX : 0);
                            long leaf = PageTableBuilder.S1_RW | Descriptor.AP_RO.prep(bit(row[0], 0))
                                    | Descriptor.AP_USER.prep(bit(row[0], 1)) | Descriptor.PXN.prep(pxn ? 1 : 0)
                                    | Descriptor.UXN.prep(uxn ? 1 : 0);
                            long table = Descriptor.AP_TABLE_RO.prep(bit(row[1], 0))
                                    | Descriptor.AP_TABLE_NO_USER.prep(bit(row[1], 1))
                                    | Descriptor.PXN_TABLE.prep(pxnTable ? 1 : 0) | Descriptor.UXN_TABLE.prep(uxnTable ? 1 : 0);
                            check(s1Walker(leaf, table), false, wxn, pan, false, want,
                                    "AP " + row[0] + " APTable " + row[1] + " PXN " + pxn + " UXN " + uxn
                                            + " PXNTable " + pxnTable + " UXNTable " + uxnTable + " WXN " + wxn + " PAN " + pan);
                            cells++;
                        }
                    }
                }
            }
        }
        assertEquals(16 * 4 * 4 * 2 * 2, cells);
    }

    /** IHI 0070 §5.4 CD.HAD0: with hierarchical attributes disabled the table bits do nothing. */
    @Test
    void hadIgnoresTableAttributes() {
        long all = Descriptor.AP_TABLE_RO.mask() | Descriptor.AP_TABLE_NO_USER.mask() | Descriptor.PXN_TABLE.mask()
                | Descriptor.UXN_TABLE.mask();
        Built b = s1Walker(PageTableBuilder.S1_RW | PageTableBuilder.S1_USER, all);
        Stage1Config had = b.config.withHad(true, false);
        Translation t = assertInstanceOf(Translation.class, b.walker.stage1(had, VA, DmaAccess.WRITE));
        assertEquals(Perm.PR | Perm.PW | Perm.UR | Perm.UW | Perm.UX, t.perm());
    }

    // EL2 (StreamWorld any-EL2, one privilege): AP[2], APTable[1], XN (bit 54), XNTable (bit 60),
    // WXN -> permissions of every access (AP[1], APTable[0], PXN and PXNTable are not used).
    private static final String[][] EL2 = {
        // AP[2] APTable[1] XN XNTable WXN -> rwx
        {"0", "0", "0", "0", "0", "rwx"}, {"0", "0", "0", "0", "1", "rw-"}, {"0", "0", "1", "0", "0", "rw-"},
        {"0", "0", "0", "1", "0", "rw-"}, {"0", "1", "0", "0", "0", "r-x"}, {"0", "1", "0", "0", "1", "r-x"},
        {"1", "0", "0", "0", "0", "r-x"}, {"1", "0", "0", "0", "1", "r-x"}, {"1", "0", "1", "0", "1", "r--"},
        {"1", "1", "0", "1", "0", "r--"},
    };

    @Test
    void el2SinglePrivilegeRegime() {
        for (String[] row : EL2) {
            for (int ignored = 0; ignored < 8; ignored++) {
                // AP[1], APTable[0], PXN, PXNTable must make no difference (ignored == 0b111 sets all).
                long leaf = PageTableBuilder.S1_RW | Descriptor.AP_RO.prep(bit(row[0], 0)) | Descriptor.UXN.prep(bit(row[2], 0))
                        | Descriptor.AP_USER.prep(ignored & 1) | Descriptor.PXN.prep((ignored >> 1) & 1);
                long table = Descriptor.AP_TABLE_RO.prep(bit(row[1], 0)) | Descriptor.UXN_TABLE.prep(bit(row[3], 0))
                        | Descriptor.AP_TABLE_NO_USER.prep((ignored >> 2) & 1) | Descriptor.PXN_TABLE.prep((ignored >> 2) & 1);
                int p = (row[5].charAt(0) == 'r' ? Perm.PR : 0) | (row[5].charAt(1) == 'w' ? Perm.PW : 0)
                        | (row[5].charAt(2) == 'x' ? Perm.PX : 0);
                check(s1Walker(leaf, table), true, bit(row[4], 0) == 1, false, false, p | (p >> 3),
                        "EL2 " + String.join(",", row) + " ignored " + ignored);
            }
        }
    }

    // S2AP, XN[1:0], FEAT_XNX -> privileged/unprivileged rwx (Arm ARM D8.4.3; S2AP[0] read,
    // S2AP[1] write; without XNX only XN[1] counts; with XNX 0b01 is not executable at EL1 and
    // 0b11 not at EL0).
    private static final String[][] S2 = {
        {"00", "00", "-", "--x/--x"}, {"00", "00", "XNX", "--x/--x"}, {"00", "01", "-", "--x/--x"},
        {"00", "01", "XNX", "---/--x"}, {"00", "10", "-", "---/---"}, {"00", "10", "XNX", "---/---"},
        {"00", "11", "-", "---/---"}, {"00", "11", "XNX", "--x/---"}, {"01", "00", "-", "r-x/r-x"},
        {"01", "00", "XNX", "r-x/r-x"}, {"01", "01", "-", "r-x/r-x"}, {"01", "01", "XNX", "r--/r-x"},
        {"01", "10", "-", "r--/r--"}, {"01", "10", "XNX", "r--/r--"}, {"01", "11", "-", "r--/r--"},
        {"01", "11", "XNX", "r-x/r--"}, {"10", "00", "-", "-wx/-wx"}, {"10", "00", "XNX", "-wx/-wx"},
        {"10", "01", "-", "-wx/-wx"}, {"10", "01", "XNX", "-w-/-wx"}, {"10", "10", "-", "-w-/-w-"},
        {"10", "10", "XNX", "-w-/-w-"}, {"10", "11", "-", "-w-/-w-"}, {"10", "11", "XNX", "-wx/-w-"},
        {"11", "00", "-", "rwx/rwx"}, {"11", "00", "XNX", "rwx/rwx"}, {"11", "01", "-", "rwx/rwx"},
        {"11", "01", "XNX", "rw-/rwx"}, {"11", "10", "-", "rw-/rw-"}, {"11", "10", "XNX", "rw-/rw-"},
        {"11", "11", "-", "rw-/rw-"}, {"11", "11", "XNX", "rwx/rw-"},
    };

    @Test
    void stage2PermissionMatrix() {
        for (String[] row : S2) {
            SparseGuestMemory mem = new SparseGuestMemory(1L << 32);
            PageTableBuilder b = PageTableBuilder.stage2(mem, new PageTableBuilder.Bump(0x100_0000L, 0x100_0000L),
                    Granule.G4K, 24, 1, 40, 48);
            long attrs = Descriptor.AF.mask() | Descriptor.S2_MEMATTR.prep(0b1111)
                    | Descriptor.S2AP_R.prep(bit(row[0], 1)) | Descriptor.S2AP_W.prep(bit(row[0], 0))
                    | Descriptor.S2_XN.prep(Integer.parseInt(row[1], 2));
            long slot = b.map(VA, 0x8000_0000L, 3, attrs);
            Stage2Config c = b.stage2Config().withXnx(row[2].equals("XNX"));
            Walker w = new Walker(mem, 48);
            String s = row[3];
            int want = (s.charAt(0) == 'r' ? Perm.PR : 0) | (s.charAt(1) == 'w' ? Perm.PW : 0) | (s.charAt(2) == 'x' ? Perm.PX : 0)
                    | (s.charAt(4) == 'r' ? Perm.UR : 0) | (s.charAt(5) == 'w' ? Perm.UW : 0) | (s.charAt(6) == 'x' ? Perm.UX : 0);
            String where = "S2AP " + row[0] + " XN " + row[1] + " " + row[2];
            for (DmaAccess acc : ACCESSES) {
                WalkResult r = w.stage2(c, VA + 8, acc);
                if (Perm.allows(want, acc)) {
                    Translation t = assertInstanceOf(Translation.class, r, where + " " + acc);
                    assertEquals(want, t.perm(), where);
                    assertEquals(0x8000_0008L, t.outputAddress());
                } else {
                    TranslationFault f = assertInstanceOf(TranslationFault.class, r, where + " " + acc);
                    assertEquals(FaultType.PERMISSION, f.type(), where + " " + acc);
                    assertEquals(2, f.stage());
                    assertEquals(3, f.level());
                    assertEquals(slot, f.descriptorAddress());
                }
            }
        }
    }

    private record Built(Walker walker, Stage1Config config, long leafSlot) {}

    /** A 4K stage 1 with the leaf at level 3 and {@code tableBits} in the level 2 table descriptor. */
    private static Built s1Walker(long leafAttrs, long tableBits) {
        SparseGuestMemory mem = new SparseGuestMemory(1L << 32);
        PageTableBuilder b = PageTableBuilder.stage1(mem, new PageTableBuilder.Bump(0x100_0000L, 0x100_0000L),
                Granule.G4K, 25, 40, 48);
        long slot = b.map(VA, 0x8000_0000L, 3, leafAttrs);
        b.tableAttributes(VA, 2, tableBits);
        return new Built(new Walker(mem, 48), b.stage1Config(), slot);
    }

    private static void check(Built b, boolean el2, boolean wxn, boolean pan, boolean had, int want, String where) {
        Stage1Config c = b.config.withFlags(false, wxn, pan).withEl2(el2).withHad(had, had);
        if (el2) {
            c = new Stage1Config(c.tt0(), null, c.ipsBits(), false, false, false, false, false, wxn, pan, false, false,
                    true, had, had);
        }
        for (DmaAccess acc : ACCESSES) {
            WalkResult r = b.walker.stage1(c, VA + 0x18, acc);
            if (Perm.allows(want, acc)) {
                Translation t = assertInstanceOf(Translation.class, r, where + " " + acc);
                assertEquals(want, t.perm(), where + ": " + Perm.toString(want) + " vs " + Perm.toString(t.perm()));
                assertEquals(0x8000_0018L, t.outputAddress());
            } else {
                TranslationFault f = assertInstanceOf(TranslationFault.class, r, where + " " + acc);
                assertEquals(FaultType.PERMISSION, f.type(), where + " " + acc);
                assertEquals(3, f.level());
                assertEquals(b.leafSlot, f.descriptorAddress());
                assertEquals(acc, f.access());
            }
        }
    }
}
