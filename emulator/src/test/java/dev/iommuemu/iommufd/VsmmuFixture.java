package dev.iommuemu.iommufd;

import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.domain.HostPageTable;
import dev.iommuemu.domain.HostSmmu;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.domain.PagingDomain;
import dev.iommuemu.memory.SparseGuestMemory;
import dev.iommuemu.pagetable.Granule;
import dev.iommuemu.pagetable.Stage2Config;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.smmuv3.ats.EndpointPort;
import dev.iommuemu.smmuv3.cd.Cd;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayList;
import java.util.List;

/**
 * A VMM building a vSMMU for its guest on the iommufd model: host memory with the guest's RAM at
 * {@link #GPA_BASE}, a nest parent mapping the guest's IPA space onto it, a vIOMMU with the guest's
 * StreamID {@link #VSID} for the physical {@link #SID}; and the guest's own structures (CD table,
 * stage 1 tables built by the independent {@link PageTableBuilder}) written in guest memory.
 */
final class VsmmuFixture {
    static final long GPA_BASE = 0x2_0000_0000L;
    static final long GUEST_RAM = 0x80_0000L;
    static final int SID = 5;
    static final long VSID = 0x42;
    static final long CD_IPA = 0x10_0000L;
    static final int ASID = 7;

    final SparseGuestMemory mem = new SparseGuestMemory(0, 1L << 40);
    final List<String> endpointCalls = new ArrayList<>();
    final IommuCore core;
    final Iommufd fd;
    final int devId;
    final int parentId;
    final PagingDomain parent;
    final int viommuId;
    final Viommu viommu;
    final PageTableBuilder s1;

    /** An endpoint port that writes each call into {@code calls} as one line ("pri ...", "atc ...", "stall ..."). */
    static EndpointPort recordingPort(java.util.List<String> calls) {
        return new EndpointPort() {
            @Override
            public void priResponse(int streamId, int ssid, int prgIndex, int response) {
                calls.add("pri " + streamId + " " + ssid + " " + prgIndex + " " + response);
            }

            @Override
            public void atcInvalidate(int streamId, int ssid, long addr, long size, boolean global) {
                calls.add("atc " + streamId + " 0x" + Long.toHexString(addr));
            }

            @Override
            public void stallResolved(int streamId, int stag, boolean retry) {
                calls.add("stall " + streamId + " " + stag + " " + retry);
            }
        };
    }

    VsmmuFixture(Smmuv3Profile profile) {
        HostSmmu host = new HostSmmu(mem, 0x1000_0000L, 0x1000_0000L, profile, DmaHost.NONE, 6);
        host.endpointPort(recordingPort(endpointCalls));
        core = new IommuCore(host, IommuCore.Options.DEFAULT);
        core.probe(SID, null).get();
        fd = new Iommufd(core);
        devId = fd.bind(SID).get();
        parentId = fd.allocHwptPaging(devId, Iommufd.HWPT_ALLOC_NEST_PARENT).get();
        parent = fd.paging(parentId);
        if (parent.map(0, GPA_BASE, GUEST_RAM, HostPageTable.IOMMU_READ | HostPageTable.IOMMU_WRITE) != null) {
            throw new IllegalStateException("parent map");
        }
        viommuId = fd.allocViommu(devId, parentId).get();
        viommu = (Viommu) objectsViommu();
        fd.allocVdevice(viommuId, devId, VSID).get();
        s1 = PageTableBuilder.stage1(mem, new PageTableBuilder.Bump(0x20_0000L, 0x20_0000L), Granule.G4K, 16, 48, 48)
                .tableWriter(ipa -> GPA_BASE + ipa);
        s1.ttb();
        guestCd(CD_IPA, cd(s1.ttb(), ASID, false));
    }

    private Object objectsViommu() {
        // The fixture knows its vIOMMU through its VMID-carrying object: look it up by id.
        return fd.viommu(viommuId);
    }

    /** The host physical address of guest IPA {@code ipa}. */
    static long pa(long ipa) {
        return GPA_BASE + ipa;
    }

    /** The guest writes a CD at IPA {@code ipa}. */
    void guestCd(long ipa, long[] w) {
        for (int i = 0; i < Cd.WORDS; i++) {
            mem.put64(pa(ipa) + 8L * i, w[i]);
        }
    }

    static long[] cd(long ttb0Ipa, int asid, boolean stall) {
        long[] w = new long[Cd.WORDS];
        Cd.V.set(w, 1);
        Cd.T0SZ.set(w, 16);
        Cd.EPD1.set(w, 1);
        Cd.IPS.set(w, 5);
        Cd.AA64.set(w, 1);
        Cd.R.set(w, 1);
        Cd.A.set(w, 1);
        Cd.S.set(w, stall);
        Cd.ASID.set(w, asid);
        Cd.TTB0.set(w, ttb0Ipa >>> 4);
        return w;
    }

    /** The guest's STE words 0-1 for a linear single-CD stage 1 at {@link #CD_IPA}. */
    static long[] guestSte() {
        long[] w = new long[2];
        w[0] = Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_S1) | Ste.S1CONTEXTPTR.prep(CD_IPA >>> 6);
        return w;
    }

    /** The nest parent as the reference walker sees it (S2T0SZ 16, level 0, PS 48). */
    Stage2Config s2Config() {
        return Stage2Config.simple(parent.table().root(), 16, 0, Granule.G4K, 48);
    }
}
