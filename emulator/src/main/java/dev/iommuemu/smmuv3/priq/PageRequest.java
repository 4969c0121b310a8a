package dev.iommuemu.smmuv3.priq;

import dev.iommuemu.field.Field;
import dev.iommuemu.field.Layout;

/**
 * One PRI queue entry (IHI 0070 §8 Page request queue: 16 bytes), a PCIe Page Request or Stop
 * Marker from an ATS/PRI-capable endpoint.
 *
 * @param ssid the PASID, or -1 without one (SSV == 0)
 * @param address the page address (bits [63:12] significant)
 */
public record PageRequest(int streamId, int ssid, long address, int prgIndex, boolean last, boolean read,
        boolean write, boolean exec, boolean priv) {

    public static final int SIZE = 16;

    // ---- §8 PRI queue entry fields
    public static final Field STREAMID = Field.bits("StreamID", 31, 0);
    public static final Field SUBSTREAMID = Field.bits("SubstreamID", 51, 32);
    public static final Field PRIV = Field.bit("Priv", 58);
    public static final Field EXEC = Field.bit("X", 59);
    public static final Field READ = Field.bit("R", 60);
    public static final Field WRITE = Field.bit("W", 61);
    public static final Field LAST = Field.bit("Last", 62);
    public static final Field SSV = Field.bit("SSV", 63);
    public static final Field PRGINDEX = Field.bits("PRGIndex", 72, 64);
    public static final Field ADDRESS = Field.bits("Page address", 127, 76);
    public static final Layout LAYOUT = new Layout("PRI", 2, STREAMID, SUBSTREAMID, PRIV, EXEC, READ, WRITE, LAST,
            SSV, PRGINDEX, ADDRESS);

    /** A Stop PASID marker: SSV == 1 and L/W/R == 0b100 (§8). */
    public boolean stopMarker() {
        return ssid >= 0 && last && !write && !read;
    }

    public long[] encode() {
        long[] w = new long[2];
        STREAMID.set(w, streamId & 0xffff_ffffL);
        boolean ssv = ssid >= 0;
        SSV.set(w, ssv);
        if (ssv) {
            SUBSTREAMID.set(w, ssid);
        }
        // §8: without a PASID, X and Priv are 0.
        PRIV.set(w, ssv && priv);
        EXEC.set(w, ssv && exec);
        READ.set(w, read);
        WRITE.set(w, write);
        LAST.set(w, last);
        PRGINDEX.set(w, prgIndex);
        ADDRESS.set(w, address >>> 12);
        return w;
    }

    public static PageRequest decode(long[] w) {
        boolean ssv = SSV.isSet(w);
        return new PageRequest((int) STREAMID.get(w), ssv ? SUBSTREAMID.getInt(w) : -1, ADDRESS.get(w) << 12,
                PRGINDEX.getInt(w), LAST.isSet(w), READ.isSet(w), WRITE.isSet(w), EXEC.isSet(w), PRIV.isSet(w));
    }
}
