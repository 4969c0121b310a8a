package dev.iommuemu.smmuv3;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Bad guest input never escapes as an exception or a hang: random STEs, CDs, page tables,
 * commands and register writes. Bounded by default; -Diommuemu.fuzz.iterations=N for longer runs.
 */
class FuzzTest {
    private static final int ITERATIONS = Integer.getInteger("iommuemu.fuzz.iterations", 1500);
    private static final int Ste_NESTED = dev.iommuemu.smmuv3.streamtable.Ste.CONFIG_NESTED;

    @Test
    void randomGuestStateNeverThrows() {
        for (Smmuv3Profile p : Smmuv3Profile.ALL) {
            Random rnd = new Random(0x5eed ^ p.name().hashCode());
            Harness h = new Harness(p, Smmuv3.Options.DEFAULT.withStrict(true)).enable();
            for (int i = 0; i < ITERATIONS; i++) {
                int sid = rnd.nextInt(1 << Harness.STRTAB_LOG2);
                long[] ste = new long[8];
                long[] cd = new long[8];
                for (int w = 0; w < 8; w++) {
                    ste[w] = rnd.nextLong() & (rnd.nextBoolean() ? 0xffffL : -1L);
                    cd[w] = rnd.nextLong();
                }
                // Keep some pointers inside memory so walks go deep.
                ste[0] = (ste[0] & ~0x00ff_ffff_ffff_ffc0L) | (Harness.CDS & 0xffff_ffc0L);
                ste[3] = (ste[3] & ~0x000f_ffff_ffff_fff0L) | Harness.TABLES;
                cd[1] = (cd[1] & ~0x000f_ffff_ffff_fff0L) | Harness.TABLES;
                if (rnd.nextBoolean()) {
                    // Valid structures with a few bits flipped reach the deep paths (walks, stalls).
                    long[][] templates = {Harness.s1Ste(Harness.CDS, rnd.nextInt(3)), Harness.s2Ste(Harness.TABLES, 1),
                        Harness.s2Ste(Harness.TABLES, 2)};
                    ste = templates[rnd.nextInt(templates.length)];
                    if (rnd.nextInt(3) == 0) {
                        dev.iommuemu.smmuv3.streamtable.Ste.CONFIG.set(ste, Ste_NESTED);
                        dev.iommuemu.smmuv3.streamtable.Ste.S1CONTEXTPTR.set(ste, Harness.CDS >>> 6);
                    }
                    cd = Harness.cd(Harness.TABLES, rnd.nextInt(4));
                    for (int f = rnd.nextInt(4); f > 0; f--) {
                        ste[rnd.nextInt(4)] ^= 1L << rnd.nextInt(64);
                        cd[rnd.nextInt(3)] ^= 1L << rnd.nextInt(64);
                    }
                }
                h.ste(sid, ste);
                h.cd(Harness.CDS + 64L * rnd.nextInt(4), cd);
                h.mem.put64(Harness.TABLES + 8L * rnd.nextInt(512), rnd.nextLong());
                int ssid = rnd.nextInt(4) == 0 ? rnd.nextInt(1 << 20) : -1;
                DmaAccess acc = new DmaAccess(rnd.nextBoolean(), rnd.nextBoolean(), rnd.nextBoolean());
                long iova = rnd.nextBoolean() ? rnd.nextLong() : rnd.nextInt(1 << 24);
                DmaResult r = h.smmu.translate(sid, ssid, iova, acc);
                assertNotNull(r);
                if (p.ats()) {
                    assertNotNull(h.smmu.atsTranslate(sid, ssid, rnd.nextLong(), acc));
                }
                long[] cmd = {rnd.nextLong(), rnd.nextLong()};
                if (rnd.nextBoolean()) {
                    cmd[0] = (cmd[0] & ~0xffL) | new int[] {0x01, 0x03, 0x04, 0x05, 0x06, 0x10, 0x11, 0x12, 0x13, 0x20,
                        0x28, 0x2a, 0x30, 0x40, 0x41, 0x44, 0x45, 0x46}[rnd.nextInt(18)];
                }
                h.cmd(cmd);
                if (rnd.nextInt(8) == 0) {
                    h.write(GERRORN.offset(), h.read(GERROR.offset())); // acknowledge everything
                }
                if (rnd.nextInt(16) == 0) {
                    int off = rnd.nextInt(WINDOW_SIZE) & ~3;
                    if (off != CR0.offset() && off != STRTAB_BASE.offset() && off != CMDQ_BASE.offset()) {
                        h.smmu.mmioWrite(off, rnd.nextBoolean() ? 4 : 8, rnd.nextLong());
                    }
                    h.smmu.mmioRead(rnd.nextInt(WINDOW_SIZE + 64) - 32, rnd.nextInt(9));
                }
                h.rawEvents();
            }
        }
    }
}
