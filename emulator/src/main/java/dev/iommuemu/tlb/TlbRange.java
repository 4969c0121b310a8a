package dev.iommuemu.tlb;

import dev.iommuemu.pagetable.Granule;

/**
 * The range and level-hint fields common to every address-based TLB invalidation command
 * (IHI 0070 §4.4.1.1 "Range-based invalidation and level hint": TG, NUM, SCALE, TTL).
 *
 * <p>TG = 0 is a single-address invalidation: NUM, SCALE and TTL are RES0 there and are ignored
 * (the canonical constructor clears them). TG != 0 is a range invalidation of
 * {@code ((NUM + 1) << SCALE)} granules of TG's size, beginning at the command's address aligned
 * down to that granule, and it only applies to entries inserted with that granule; a non-zero
 * TTL further restricts it to leaf entries from that level of walk (§4.4.1.1 TTL table).
 *
 * <p>Checks that are the command queue's, not the TLB's: TG != 0 with NUM = SCALE = TTL = 0 is
 * Reserved and raises CERROR_ILL ({@link #reserved()}); TG = 16K with TTL = 1 when
 * SMMU_IDR5.DS == 0 is treated as TTL = 0 (the decoder should pass TTL = 0 then); SCALE is 5 bits
 * wide without DS. Values of SCALE above 39 are treated as 39 (§4.4.1.1 SCALE).
 *
 * @param tg    translation granule: 0 none (single address), 1 4KB, 2 16KB, 3 64KB
 * @param num   range multiplier minus one, 0..31
 * @param scale range scale exponent, 0..63 (values above 39 act as 39)
 * @param ttl   level hint: 0 any level, 1..3 leaf entries at that level only
 */
public record TlbRange(int tg, int num, int scale, int ttl) {
    /** TG = 0: the single address in the command, TTL not used. */
    public static final TlbRange SINGLE = new TlbRange(0, 0, 0, 0);

    /** §4.4.1.1 SCALE: "Values of this field that are greater than 39 are treated as 39". */
    static final int MAX_SCALE = 39;

    public TlbRange {
        if (tg < 0 || tg > 3) {
            throw new IllegalArgumentException("TG is 2 bits: " + tg);
        }
        if (num < 0 || num > 31) {
            throw new IllegalArgumentException("NUM is 5 bits: " + num);
        }
        if (scale < 0 || scale > 63) {
            throw new IllegalArgumentException("SCALE is 6 bits: " + scale);
        }
        if (ttl < 0 || ttl > 3) {
            throw new IllegalArgumentException("TTL is 2 bits: " + ttl);
        }
        if (tg == 0) {
            // §4.4.1.1: NUM, SCALE and TTL are RES0 when TG == 0b00; no range, no hint.
            num = 0;
            scale = 0;
            ttl = 0;
        }
    }

    /** A range of {@code (num + 1) << scale} granules, any level (TTL = 0). */
    public static TlbRange of(Granule granule, int num, int scale) {
        return new TlbRange(tgOf(granule), num, scale, 0);
    }

    /** A range with a level hint. */
    public static TlbRange of(Granule granule, int num, int scale, int ttl) {
        return new TlbRange(tgOf(granule), num, scale, ttl);
    }

    /** The TG encoding of a granule (§4.4.1.1 TG: 0b01 4KB, 0b10 16KB, 0b11 64KB). */
    public static int tgOf(Granule granule) {
        return switch (granule) {
            case G4K -> 1;
            case G16K -> 2;
            case G64K -> 3;
        };
    }

    /** Whether this is a range invalidation (TG != 0). */
    public boolean isRange() {
        return tg != 0;
    }

    /** TG's granule, or null for TG = 0. */
    public Granule granule() {
        return switch (tg) {
            case 1 -> Granule.G4K;
            case 2 -> Granule.G16K;
            case 3 -> Granule.G64K;
            default -> null;
        };
    }

    /** The leaf level entries must come from, or -1 for any level (TG = 0 or TTL = 0). */
    public int level() {
        return tg != 0 && ttl != 0 ? ttl : -1;
    }

    /** §4.4.1.1: Range = ((NUM + 1) * 2^SCALE) * Translation_Granule_Size, in bytes; 0 for TG = 0. */
    public long bytes() {
        if (tg == 0) {
            return 0;
        }
        int s = Math.min(scale, MAX_SCALE) + granule().pageShift();
        return (long) (num + 1) << s; // at most 32 << 55 = 2^60: no overflow
    }

    /**
     * The first address a range invalidation at {@code address} covers: the address aligned down
     * to TG. (§4.4.1.1: the range begins at Address; an Address not aligned to TG makes the range
     * UNPREDICTABLE, and this implementation then covers the whole first granule.)
     */
    public long start(long address) {
        return address & -(1L << granule().pageShift());
    }

    /**
     * The last address (inclusive) a range invalidation at {@code address} covers; the range does
     * not wrap past the top of the address space (§4.4.1.1 note: the Address is not considered to
     * wrap on overflow), so this saturates at 2^64 - 1.
     */
    public long end(long address) {
        long start = start(address);
        long end = start + (bytes() - 1);
        return Long.compareUnsigned(end, start) < 0 ? -1L : end;
    }

    /** §4.4.1.1: TG != 0 with NUM == 0, SCALE == 0 and TTL == 0 is Reserved (CERROR_ILL). */
    public boolean reserved() {
        return tg != 0 && num == 0 && scale == 0 && ttl == 0;
    }
}
