package dev.iommuemu.tools.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** Numbers on iommu-emu-ctl's command line: decimal or 0x-hex, underscores allowed, checked ranges. */
final class Numbers {
    private Numbers() {}

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /** An unsigned 64-bit value. */
    static long u64(String s) {
        String t = s.replace("_", "").trim();
        try {
            if (t.startsWith("0x") || t.startsWith("0X")) {
                return Long.parseUnsignedLong(t.substring(2), 16);
            }
            if (t.startsWith("-")) {
                throw new TypeConversionException("'" + s + "' is negative; give a number from 0 (decimal or 0x-hex)");
            }
            return Long.parseUnsignedLong(t);
        } catch (NumberFormatException e) {
            throw new TypeConversionException("'" + s + "' is not a number; give a decimal or 0x-hex number");
        }
    }

    static final class U64 implements ITypeConverter<Long> {
        @Override
        public Long convert(String s) {
            return u64(s);
        }
    }

    /** A 32-bit unsigned identifier (StreamID, SubstreamID, length). */
    static final class U32 implements ITypeConverter<Integer> {
        @Override
        public Integer convert(String s) {
            long v = u64(s);
            if (v >>> 32 != 0) {
                throw new TypeConversionException("'" + s + "' does not fit 32 bits; give 0..0xffffffff");
            }
            return (int) v;
        }
    }

    /** An MMIO access size. */
    static final class Size implements ITypeConverter<Integer> {
        @Override
        public Integer convert(String s) {
            long v = u64(s);
            if (v != 1 && v != 2 && v != 4 && v != 8) {
                throw new TypeConversionException("'" + s + "' is not an access size; give 1, 2, 4 or 8");
            }
            return (int) v;
        }
    }

    /** "SIZE[@GPA]" with K/M/G suffixes on SIZE: {size, gpa}. */
    static long[] region(String s) {
        String[] p = s.split("@", 2);
        String size = p[0].trim();
        long mul = 1;
        char last = size.isEmpty() ? ' ' : Character.toUpperCase(size.charAt(size.length() - 1));
        if (last == 'K' || last == 'M' || last == 'G') {
            mul = last == 'K' ? 1L << 10 : last == 'M' ? 1L << 20 : 1L << 30;
            size = size.substring(0, size.length() - 1);
        }
        return new long[] {u64(size) * mul, p.length > 1 ? u64(p[1]) : 0};
    }
}
