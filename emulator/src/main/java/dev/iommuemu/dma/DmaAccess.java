package dev.iommuemu.dma;

/**
 * The attributes of one DMA access that matter to translation (IHI 0070 §3.2 and §13: RnW, InD,
 * PnU). An instruction fetch is a read checked against execute permission.
 */
public record DmaAccess(boolean write, boolean instruction, boolean privileged) {
    public static final DmaAccess READ = new DmaAccess(false, false, false);
    public static final DmaAccess WRITE = new DmaAccess(true, false, false);
    public static final DmaAccess PRIV_READ = new DmaAccess(false, false, true);
    public static final DmaAccess PRIV_WRITE = new DmaAccess(true, false, true);
    public static final DmaAccess EXEC = new DmaAccess(false, true, false);
    public static final DmaAccess PRIV_EXEC = new DmaAccess(false, true, true);

    public DmaAccess {
        if (write && instruction) {
            // IHI 0070 §13.1.2: a write is always a data access; InD is only meaningful for reads.
            instruction = false;
        }
    }

    public boolean read() {
        return !write;
    }

    @Override
    public String toString() {
        return (privileged ? "priv-" : "") + (write ? "write" : instruction ? "exec" : "read");
    }
}
