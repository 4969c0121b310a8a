package dev.iommuemu.iommufd;

import static dev.iommuemu.iommufd.VsmmuFixture.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.DmaResult;
import dev.iommuemu.domain.HostSmmu;
import dev.iommuemu.domain.IommuCore;
import dev.iommuemu.pagetable.testing.PageTableBuilder;
import dev.iommuemu.smmuv3.cmdq.Command;
import dev.iommuemu.smmuv3.priq.PageRequest;
import dev.iommuemu.smmuv3.profile.Smmuv3Profile;
import dev.iommuemu.smmuv3.streamtable.Ste;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Saved state of an iommufd context (docs/device-state-virtio.md): a vIOMMU with two vDEVICEs, a
 * nest parent with mappings, two nested hwpts, a vEVENT queue holding events and a LOST_EVENTS
 * header, a fault queue with unread faults, an owed response and an open PRI group are saved,
 * restored on a fresh host, and answer the next calls with the same ids, records and effects.
 */
class IommufdStateTest {
    static final long VA = 0x4000_0000L;
    static final int SID2 = 6;
    static final long VSID2 = 0x43;
    static final long RW = PageTableBuilder.S1_RW | PageTableBuilder.S1_USER | dev.iommuemu.pagetable.Descriptor.NG.prep(1);

    /** The objects the test builds, by id. */
    record Built(VsmmuFixture f, int dev2, int veq, int fq, int hwpt, int hwpt2, int owedCookie) {}

    static Built build() {
        VsmmuFixture f = new VsmmuFixture(Smmuv3Profile.MAX);
        f.core.probe(SID2, null).get();
        int dev2 = f.fd.bind(SID2).get();
        f.fd.allocVdevice(f.viommuId, dev2, VSID2).get();
        int veq = f.fd.allocVeventq(f.viommuId, 4).get();
        int fq = f.fd.allocFaultQueue();
        int h = f.fd.allocHwptNested(f.viommuId, 0, guestSte(), fq).get();
        assertNull(f.fd.attach(f.devId, h));
        long[] abort = {Ste.V.prep(1) | Ste.CONFIG.prep(Ste.CONFIG_ABORT), 0};
        int h2 = f.fd.allocHwptNested(f.viommuId, 0, abort, 0).get();
        assertNull(f.fd.attach(dev2, h2));
        f.s1.map(VA, 0x60_0000L, 3, RW);
        // Six stage 1 faults into a queue of depth 4: four events and a LOST_EVENTS header; read two.
        for (int i = 1; i <= 6; i++) {
            assertInstanceOf(DmaResult.Aborted.class, f.fd.dma(SID, -1, VA + i * 0x1000L, DmaAccess.WRITE));
        }
        assertEquals(2, f.fd.readVevents(veq, 2).get().size());
        // A complete PRI group (read: its response is owed) and the first request of an open one (unread).
        var smmu = f.core.host().smmu();
        assertTrue(smmu.pageRequest(new PageRequest(SID, 3, VA, 0x11, true, true, false, false, false)));
        int owed = f.fd.readFaults(fq, 8).get().get(0).cookie();
        assertTrue(smmu.pageRequest(new PageRequest(SID, -1, VA + 0x8000, 0x12, false, true, true, false, false)));
        f.core.pollEvents();
        return new Built(f, dev2, veq, fq, h, h2, owed);
    }

    /** A fresh host over the same memory (the guest's RAM), its structures in another carve-out. */
    static IommuCore freshCore(VsmmuFixture f, List<String> calls, int... sids) {
        HostSmmu host = new HostSmmu(f.mem, 0x3000_0000L, 0x1000_0000L, Smmuv3Profile.MAX, DmaHost.NONE, 6);
        host.endpointPort(VsmmuFixture.recordingPort(calls));
        IommuCore core = new IommuCore(host, IommuCore.Options.DEFAULT);
        for (int sid : sids) {
            core.probe(sid, null).get();
        }
        return core;
    }

    @Test
    void aRestoredContextKeepsItsIdsAndAnswersTheNextCallsTheSame() {
        Built b = build();
        VsmmuFixture f = b.f();
        Iommufd.State s = f.fd.saveState();
        assertEquals(10, s.objects().size(), "2 devices, parent, vIOMMU, 2 vDEVICEs, vEVENTQ, fault queue, 2 nested hwpts");
        List<String> calls2 = new ArrayList<>();
        Iommufd fd2 = Iommufd.restore(freshCore(f, calls2, SID, SID2), s);
        assertEquals(s, fd2.saveState());
        assertEquals(List.of(new Iommufd.Readable(b.veq(), false, 1), new Iommufd.Readable(b.fq(), true, 1)), fd2.takeReadable(),
                "queues with entries are readable after a load");
        f.endpointCalls.clear();

        // The unread vEVENTs (with the LOST_EVENTS header) and the unread fault, the same on both.
        List<Vevent> v1 = f.fd.readVevents(b.veq(), 10).get();
        assertEquals(3, v1.size());
        assertTrue(v1.get(2).lost());
        assertEquals(v1, fd2.readVevents(b.veq(), 10).get());
        List<PageFault> pf = f.fd.readFaults(b.fq(), 10).get();
        assertEquals(1, pf.size());
        assertEquals(pf, fd2.readFaults(b.fq(), 10).get());
        // The owed response is answered the same way: CMD_PRI_RESP Success for the group.
        assertNull(f.fd.pageResponse(b.fq(), b.owedCookie(), FaultQueue.RESP_SUCCESS));
        assertNull(fd2.pageResponse(b.fq(), b.owedCookie(), FaultQueue.RESP_SUCCESS));
        assertEquals(List.of("pri " + SID + " 3 17 0"), f.endpointCalls);
        assertEquals(f.endpointCalls, calls2);
        // The open group completes with the same cookie.
        for (Iommufd fd : List.of(f.fd, fd2)) {
            fd.core().host().smmu().pageRequest(new PageRequest(SID, -1, VA + 0x9000, 0x12, true, false, true, false, false));
        }
        List<PageFault> last = f.fd.readFaults(b.fq(), 10).get();
        assertEquals(pf.get(0).cookie(), last.get(0).cookie());
        assertEquals(last, fd2.readFaults(b.fq(), 10).get());
        // Translation through the restored nest parent and nested hwpt; an aborting STE; invalidation.
        DmaResult t = f.fd.dma(SID, -1, VA + 0x10, DmaAccess.READ);
        assertEquals(pa(0x60_0010L), ((DmaResult.Translated) t).entry().translate(VA + 0x10));
        assertEquals(t, fd2.dma(SID, -1, VA + 0x10, DmaAccess.READ));
        assertEquals(f.fd.dma(SID2, -1, VA, DmaAccess.READ), fd2.dma(SID2, -1, VA, DmaAccess.READ));
        long[] tlbi = Command.build(Command.Op.CMD_TLBI_NH_ASID).set(Command.TLBI_ASID, ASID).words();
        assertEquals(new Iommufd.InvalidateResult(null, 1), f.fd.invalidate(f.viommuId, tlbi));
        assertEquals(new Iommufd.InvalidateResult(null, 1), fd2.invalidate(f.viommuId, tlbi));
        // New faults continue the vEVENT sequence; new objects continue the ids.
        f.fd.dma(SID, -1, VA + 0x20_0000L, DmaAccess.WRITE);
        fd2.dma(SID, -1, VA + 0x20_0000L, DmaAccess.WRITE);
        List<Vevent> next = f.fd.readVevents(b.veq(), 10).get();
        assertEquals(6, next.get(0).sequence());
        assertEquals(next, fd2.readVevents(b.veq(), 10).get());
        assertEquals(f.fd.allocFaultQueue(), fd2.allocFaultQueue());
        assertEquals(f.fd.saveState(), fd2.saveState());
    }

    @Test
    void danglingIdsAndMissingStreamIdsAreRefused() {
        Built b = build();
        VsmmuFixture f = b.f();
        Iommufd.State s = f.fd.saveState();
        List<Iommufd.ObjectState> objs = new ArrayList<>(s.objects());
        int at = -1;
        for (int i = 0; i < objs.size(); i++) {
            if (objs.get(i) instanceof Iommufd.VdeviceObject) {
                at = i;
                break;
            }
        }
        Iommufd.VdeviceObject vd = (Iommufd.VdeviceObject) objs.get(at);
        objs.set(at, new Iommufd.VdeviceObject(vd.id(), 99, vd.device(), vd.virtId()));
        Iommufd.State dangling = new Iommufd.State(objs, s.nextId());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Iommufd.restore(freshCore(f, new ArrayList<>(), SID, SID2), dangling));
        assertEquals("iommufd state refused: vDEVICE " + vd.id() + " (device object " + vd.device() + " on vIOMMU 99, virtual ID "
                + vd.virtId() + ") cannot be allocated again (IOMMU_VDEVICE_ALLOC answers ENOENT on this host), " + AFRESH, e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> Iommufd.restore(freshCore(f, new ArrayList<>(), SID), s));
        assertEquals("iommufd state refused: device object " + b.dev2() + " is StreamID 6, which this host cannot bind"
                + " (VFIO_DEVICE_BIND_IOMMUFD answers ENODEV on this host), " + AFRESH, e.getMessage());

        List<Iommufd.ObjectState> swapped = new ArrayList<>(s.objects());
        java.util.Collections.swap(swapped, 0, 1);
        e = assertThrows(IllegalArgumentException.class,
                () -> Iommufd.restore(freshCore(f, new ArrayList<>(), SID, SID2), new Iommufd.State(swapped, s.nextId())));
        assertEquals("iommufd state refused: object " + swapped.get(1).id() + " is out of id order or appears twice.", e.getMessage());

        e = assertThrows(IllegalArgumentException.class,
                () -> Iommufd.restore(freshCore(f, new ArrayList<>(), SID, SID2), new Iommufd.State(s.objects(), 3)));
        assertEquals("iommufd state refused: its next id 3 was already handed out.", e.getMessage());
    }

    /** The tail of a refusal whose object the same uAPI call does not make again (with that call's errno). */
    static final String AFRESH = "so the state names objects a host built like this one never made: load a state saved by a"
            + " session of the same profile and properties, or start afresh.";

    /** {@code s} with its fault queue's state replaced by {@code f(old)}. */
    private static Iommufd.State withFaultQueue(Iommufd.State s, java.util.function.UnaryOperator<FaultQueue.State> f) {
        List<Iommufd.ObjectState> objs = new ArrayList<>(s.objects());
        for (int i = 0; i < objs.size(); i++) {
            if (objs.get(i) instanceof Iommufd.FaultQueueObject q) {
                objs.set(i, new Iommufd.FaultQueueObject(q.id(), f.apply(q.state())));
            }
        }
        return new Iommufd.State(objs, s.nextId());
    }

    private static void assertFaultQueueRefused(Built b, Iommufd.State bad, String sentence) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Iommufd.restore(freshCore(b.f(), new ArrayList<>(), SID, SID2), bad));
        assertEquals("iommufd state refused: fault queue " + b.fq() + " " + sentence + ".", e.getMessage());
    }

    /**
     * A page response resumes (CMD_RESUME, IHI 0070 §4.7.1) or answers (CMD_PRI_RESP, §4.5.2) the
     * StreamID its entry holds: entries for StreamIDs no bound device has, STAGs beyond the event
     * record's 16-bit STAG, PRG indexes beyond the PRI entry's 9-bit PRGIndex, and queued faults
     * that disagree with their cookie's entry are refused.
     */
    @Test
    void faultQueueEntriesTheQueueCouldNotHoldAreRefused() {
        Built b = build();
        Iommufd.State s = b.f().fd.saveState();
        FaultQueue.State fq = ((Iommufd.FaultQueueObject) s.objects().stream().filter(o -> o instanceof Iommufd.FaultQueueObject)
                .findFirst().get()).state();
        assertEquals(1, fq.pending().size(), "the owed PRI response");
        assertEquals(1, fq.openGroups().size());
        FaultQueue.Pending owed = fq.pending().get(0);
        String owes = "owes a response to cookie " + owed.cookie();
        java.util.function.Function<FaultQueue.Pending, Iommufd.State> pending = p -> withFaultQueue(s,
                q -> new FaultQueue.State(q.queued(), List.of(p), q.openGroups(), q.nextCookie()));

        assertFaultQueueRefused(b, pending.apply(new FaultQueue.Pending(owed.cookie(), 9, -1, owed.ssid(), owed.prgIndex())),
                owes + " for StreamID 9, which is no device bound to this context");
        assertFaultQueueRefused(b, pending.apply(new FaultQueue.Pending(owed.cookie(), SID, -1, owed.ssid(), 0x200)), owes
                + " with STAG -1, PRG index 512 and SubstreamID " + owed.ssid() + ", which is neither a stall (a 16-bit STAG) nor a PRI"
                + " group (a 9-bit PRG index)");
        assertFaultQueueRefused(b, pending.apply(new FaultQueue.Pending(owed.cookie(), SID, 0x1_0000, -1, -1)), owes
                + " with STAG 65536, PRG index -1 and SubstreamID -1, which is neither a stall (a 16-bit STAG) nor a PRI group (a"
                + " 9-bit PRG index)");
        assertFaultQueueRefused(b, pending.apply(new FaultQueue.Pending(owed.cookie(), SID, 5, -1, 0x11)), owes
                + " with STAG 5, PRG index 17 and SubstreamID -1, which is neither a stall (a 16-bit STAG) nor a PRI group (a"
                + " 9-bit PRG index)");
        assertFaultQueueRefused(b, pending.apply(new FaultQueue.Pending(owed.cookie(), SID, -1, 1 << 20, owed.prgIndex())),
                owes + " with SubstreamID 1048576, beyond the 20-bit SubstreamID");
        FaultQueue.OpenGroup open = fq.openGroups().get(0);
        assertFaultQueueRefused(b, withFaultQueue(s, q -> new FaultQueue.State(q.queued(), q.pending(), List.of(new FaultQueue.OpenGroup(
                new FaultQueue.Group(SID, open.group().ssid(), 0x200), open.cookie())), q.nextCookie())),
                "has an open PRI group with cookie " + open.cookie() + " and PRG index 512, which is not a 9-bit PRG index or is open"
                + " twice (IHI 0070 §8.1)");
        assertFaultQueueRefused(b, withFaultQueue(s, q -> new FaultQueue.State(q.queued(), q.pending(), List.of(new FaultQueue.OpenGroup(
                new FaultQueue.Group(0x7777, open.group().ssid(), open.group().prgIndex()), open.cookie())), q.nextCookie())),
                "has an open PRI group with cookie " + open.cookie() + " for StreamID 30583, which is no device bound to this context");
        // The unread fault is the open group's first request: another group ID than the group's.
        PageFault unread = fq.queued().get(0);
        assertEquals(open.cookie(), unread.cookie());
        assertFaultQueueRefused(b, withFaultQueue(s, q -> new FaultQueue.State(List.of(new PageFault(unread.flags(), unread.devId(),
                unread.pasid(), 0x13, unread.perm(), unread.addr(), 0, unread.cookie())), q.pending(), q.openGroups(), q.nextCookie())),
                "holds a fault with cookie " + open.cookie() + " of StreamID " + SID + " with group ID 19, but its cookie is owed or open"
                + " for another StreamID or group");
        assertFaultQueueRefused(b, withFaultQueue(s, q -> new FaultQueue.State(List.of(new PageFault(unread.flags() | 4, unread.devId(),
                unread.pasid(), unread.grpid(), unread.perm(), unread.addr(), 0, unread.cookie())), q.pending(), q.openGroups(),
                q.nextCookie())), "holds a fault with cookie " + open.cookie() + " whose flags, permissions, group ID, PASID or address"
                + " this queue never writes");
        // The untouched state still loads.
        assertEquals(s, Iommufd.restore(freshCore(b.f(), new ArrayList<>(), SID, SID2), s).saveState());
    }
}
