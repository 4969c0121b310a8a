package dev.iommuemu.smmuv3.irq;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.MsiSource;
import dev.iommuemu.field.Field;
import dev.iommuemu.field.Register;
import dev.iommuemu.memory.GuestMemory;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.registers.RegisterFile;
import dev.iommuemu.smmuv3.registers.Smmuv3Regs;

/**
 * The SMMU's interrupt sources and global errors (IHI 0070 §3.18 interrupts and notifications,
 * §6.3 SMMU_IRQ_CTRL, §6.3 SMMU_GERROR/GERRORN). An enabled source pulses its wired line (named
 * {@link #EVTQ}, {@link #PRIQ}, {@link #CMD_SYNC}, {@link #GERROR} on the {@link DmaHost}) and,
 * when the profile has MSIs and the source's IRQ_CFG0.ADDR is non-zero, also sends an MSI: a
 * 32-bit write of IRQ_CFG1.DATA to IRQ_CFG0.ADDR (§3.18.2: both kinds may be used concurrently).
 * An MSI whose address is guest RAM is stored there (Linux polls CMD_SYNC completion that way);
 * any other address goes to the host, tagged with its {@link MsiSource}. A host that finds neither
 * memory nor a device at the address reports it back ({@link #msiAborted}), which activates the
 * source's MSI_*_ABT_ERR in SMMU_GERROR (§6.3 SMMU_GERROR).
 */
public final class Interrupts {
    public static final String EVTQ = "evtq";
    public static final String PRIQ = "priq";
    public static final String CMD_SYNC = "cmd-sync";
    public static final String GERROR = "gerror";

    private final RegisterFile regs;
    private final GuestMemory mem;
    private final DmaHost host;
    private final Smmuv3Profile profile;

    public Interrupts(RegisterFile regs, GuestMemory mem, DmaHost host, Smmuv3Profile profile) {
        this.regs = regs;
        this.mem = mem;
        this.host = host;
        this.profile = profile;
    }

    /** The Event queue went from empty to non-empty (§3.18.2), or overflowed. */
    public void eventQueue() {
        if (enabled(Smmuv3Regs.IRQ_CTRL_EVENTQ_IRQEN)) {
            signal(EVTQ, Smmuv3Regs.EVENTQ_IRQ_CFG0, Smmuv3Regs.EVENTQ_IRQ_CFG1, MsiSource.EVENT_QUEUE);
        }
    }

    /** The PRI queue interrupt condition (§3.18.2, §6.3 SMMU_PRIQ_IRQ_CFG2) arose. */
    public void priQueue() {
        if (enabled(Smmuv3Regs.IRQ_CTRL_PRIQ_IRQEN)) {
            signal(PRIQ, Smmuv3Regs.PRIQ_IRQ_CFG0, Smmuv3Regs.PRIQ_IRQ_CFG1, MsiSource.PRI_QUEUE);
        }
    }

    /**
     * CMD_SYNC completion with CS == SIG_IRQ (§4.7.3): the wired line is asserted regardless of
     * MSIAddress; with MSIs, a non-zero MSIAddress also gets a write of MSIData.
     */
    public void cmdSync(long msiAddr, int msiData) {
        host.raiseIrq(CMD_SYNC);
        if (profile.msi() && msiAddr != 0) {
            if (!msi(msiAddr & ((1L << profile.oasBits()) - 1), msiData, MsiSource.CMD_SYNC)) {
                msiAborted(MsiSource.CMD_SYNC);
            }
        }
    }

    /**
     * Activates a global error (§6.3 SMMU_GERROR: an error is active while GERROR.x != GERRORN.x; a new
     * error toggles GERROR.x only when that error is inactive) and signals it, except
     * MSI_GERROR_ABT_ERR, which triggers no GERROR interrupt (§7.5.1: a prior GERROR MSI aborted,
     * and sending another to the same address might abort again).
     */
    public void raiseGerror(Field bit) {
        long g = regs.get(Smmuv3Regs.GERROR);
        long n = regs.get(Smmuv3Regs.GERRORN);
        if (bit.isSet(g) != bit.isSet(n)) {
            return; // already active
        }
        regs.set(Smmuv3Regs.GERROR, g ^ bit.mask());
        if (bit == Smmuv3Regs.GERROR_MSI_GERROR_ABT_ERR) {
            return; // §7.5.1: the one error that raises no GERROR interrupt
        }
        if (enabled(Smmuv3Regs.IRQ_CTRL_GERROR_IRQEN)) {
            long addr = Smmuv3Regs.IRQ_CFG0_ADDR.inPlace(regs.get(Smmuv3Regs.GERROR_IRQ_CFG0));
            host.raiseIrq(GERROR);
            if (profile.msi() && addr != 0) {
                int data = (int) regs.get(Smmuv3Regs.GERROR_IRQ_CFG1);
                if (!msi(addr, data, MsiSource.GERROR)) {
                    msiAborted(MsiSource.GERROR);
                }
            }
        }
    }

    /**
     * The MSI {@code source} sent aborted: the VMM found neither memory nor a device at its address
     * (docs/protocol.md IOMMU_MSI_ABORTED), or the store into guest RAM failed. Activates the
     * source's GERROR bit (§6.3 SMMU_GERROR MSI_CMDQ_ABT_ERR, MSI_EVENTQ_ABT_ERR,
     * MSI_PRIQ_ABT_ERR, MSI_GERROR_ABT_ERR; §7.5) as {@link #raiseGerror} does: nothing changes while
     * that error is already active. {@link MsiSource#OTHER}, and any source on a profile without
     * MSIs (SMMU_IDR0.MSI == 0: this SMMU sends none), changes nothing. Returns the bit, or
     * {@code null} when none applies.
     */
    public Field msiAborted(MsiSource source) {
        Field bit = switch (source) {
            case CMD_SYNC -> Smmuv3Regs.GERROR_MSI_CMDQ_ABT_ERR;
            case EVENT_QUEUE -> Smmuv3Regs.GERROR_MSI_EVENTQ_ABT_ERR;
            case PRI_QUEUE -> Smmuv3Regs.GERROR_MSI_PRIQ_ABT_ERR;
            case GERROR -> Smmuv3Regs.GERROR_MSI_GERROR_ABT_ERR;
            case OTHER -> null;
        };
        if (bit == null || !profile.msi()) {
            return null;
        }
        raiseGerror(bit);
        return bit;
    }

    /** Whether the global error {@code bit} is active. */
    public boolean gerrorActive(Field bit) {
        return bit.isSet(regs.get(Smmuv3Regs.GERROR)) != bit.isSet(regs.get(Smmuv3Regs.GERRORN));
    }

    private boolean enabled(Field irqen) {
        // §6.3 SMMU_IRQ_CTRL: the IRQ_CTRL value in effect is the acknowledged one.
        return irqen.isSet(regs.get(Smmuv3Regs.IRQ_CTRLACK));
    }

    private void signal(String line, Register cfg0, Register cfg1, MsiSource source) {
        long addr = Smmuv3Regs.IRQ_CFG0_ADDR.inPlace(regs.get(cfg0));
        host.raiseIrq(line);
        if (profile.msi() && addr != 0) {
            if (!msi(addr, (int) regs.get(cfg1), source)) {
                msiAborted(source);
            }
        }
    }

    /**
     * One MSI write; {@code false} when it aborted at once (a failed store to guest RAM). Any other
     * address goes to the host, whose abort, if any, comes back later through {@link #msiAborted}.
     */
    private boolean msi(long addr, int data, MsiSource source) {
        if (mem.find(addr, 4) != null) {
            return mem.store(addr, 4, data & 0xffff_ffffL);
        }
        host.msi(addr, data, source);
        return true;
    }
}
