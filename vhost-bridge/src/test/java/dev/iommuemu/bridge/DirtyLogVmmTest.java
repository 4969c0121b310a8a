package dev.iommuemu.bridge;

import static dev.iommuemu.smmuv3.registers.Smmuv3Regs.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.Daemon;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.protocol.ProtocolException;
import dev.iommuemu.bridge.protocol.Request;
import dev.iommuemu.bridge.protocol.StatePayloads;
import dev.iommuemu.bridge.session.Counter;
import dev.iommuemu.bridge.session.DeviceSession;
import dev.iommuemu.bridge.testing.FakeVmm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

/**
 * docs/protocol.md §4.11 (version 11) through a real daemon: IOMMU_SET_DIRTY_LOG, a write the
 * daemon makes into guest RAM (an SMMUv3 Event queue record, IHI 0070 §7.2), IOMMU_SYNC_DIRTY_LOG,
 * and exactly the written page's bit in the VMM's bitmap; stopping; the refusals.
 */
class DirtyLogVmmTest {
    private static final long STRTAB = 0x10_0000L;
    private static final long EVTQ = 0x30_0000L;
    /** 16 MiB of guest RAM: 4096 pages, 512 bytes of bitmap. */
    private static final long RAM = 0x100_0000L;
    private static final int LOG_SIZE = 512;

    private static Map<Integer, Integer> bits(FakeVmm.Memfd f) {
        Map<Integer, Integer> m = new TreeMap<>();
        for (int i = 0; i < LOG_SIZE; i++) {
            int b = f.view.get(i) & 0xff;
            if (b != 0) {
                m.put(i, b);
            }
        }
        return m;
    }

    private static long mappings(String name) throws Exception {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(name)).count();
    }

    @Test
    void theDaemonsWritesMarkTheLogBeforeTheSyncIsAcked() throws Exception {
        Path socket = FakeVmm.socketPath("dirtylog");
        Daemon daemon = FakeVmm.daemon(socket, "smmuv3", "");
        try (VmmClient vmm = VmmClient.connect(socket); FakeVmm.Memfd log = new FakeVmm.Memfd(LOG_SIZE, "dirty-log-vmm")) {
            vmm.addMemory(0, RAM);
            DeviceSession session = daemon.registry().list().get(0);
            vmm.syncDirtyLog(); // valid without a log
            vmm.mmioWrite(STRTAB_BASE.offset(), 8, STRTAB);
            vmm.mmioWrite(STRTAB_BASE_CFG.offset(), 4, 4); // linear, 16 STEs
            vmm.mmioWrite(EVENTQ_BASE.offset(), 8, EVTQ | 4); // 16 records
            vmm.mmioWrite(CR0.offset(), 4, CR0_EVENTQEN.mask() | CR0_SMMUEN.mask());

            vmm.setDirtyLog(log.fd, LOG_SIZE);
            assertEquals(2, mappings("dirty-log-vmm"), "the VMM's view and the daemon's");
            vmm.translate(0x100, Payloads.NO_SUBSTREAM, 0, 0); // C_BAD_STREAMID (IHI 0070 §7.3.2) into record 0
            vmm.syncDirtyLog();
            assertEquals(0x02, vmm.memory().load(EVTQ, 1).getAsLong(), "the record the daemon wrote: C_BAD_STREAMID");
            // page 0x300 (GPA 0x30_0000): byte 0x60, bit 0; nothing else
            assertEquals(Map.of(0x60, 0x01), bits(log));
            assertEquals(1, session.counters().get(Counter.DIRTY_LOG_PAGES));

            // the VMM clears the word (an atomic exchange in QEMU) and copies the page; the next
            // record, 32 bytes on, lands in the same page and marks it again
            log.view.putLong(0x60, 0);
            vmm.translate(0x101, Payloads.NO_SUBSTREAM, 0, 0);
            vmm.syncDirtyLog();
            assertEquals(0x02, vmm.memory().load(EVTQ + 32, 1).getAsLong());
            assertEquals(Map.of(0x60, 0x01), bits(log));
            assertEquals(2, session.counters().get(Counter.DIRTY_LOG_PAGES));
            assertEquals(0, session.counters().get(Counter.DIRTY_LOG_OVERFLOWS));

            // stopped: unmapped, and the daemon's writes mark nothing
            log.view.putLong(0x60, 0);
            vmm.stopDirtyLog();
            assertEquals(1, mappings("dirty-log-vmm"), "the daemon unmapped its view");
            vmm.translate(0x102, Payloads.NO_SUBSTREAM, 0, 0);
            vmm.syncDirtyLog();
            assertEquals(0x02, vmm.memory().load(EVTQ + 64, 1).getAsLong());
            assertEquals(Map.of(), bits(log));

            // a new log, then another replacing it (the old mapping goes)
            vmm.setDirtyLog(log.fd, LOG_SIZE);
            assertEquals(2, mappings("dirty-log-vmm"));
            vmm.setDirtyLog(log.fd, LOG_SIZE);
            assertEquals(2, mappings("dirty-log-vmm"), "the replaced log was unmapped");

            // RAM added after the log, beyond its end (GPA 0x100_0000): the daemon's writes there
            // (the control API's WriteMemory) are counted, not marked; a log that does not reach
            // it now is refused, and the current log stays
            vmm.addMemory(RAM, 0x1_0000);
            session.writeMemory(RAM + 0x10, new byte[] {1, 2, 3, 4});
            vmm.syncDirtyLog();
            assertEquals(Map.of(), bits(log));
            assertEquals(1, session.counters().get(Counter.DIRTY_LOG_OVERFLOWS));
            assertEquals(ProtocolException.EINVAL, assertThrows(RequestRefusedException.class, () -> vmm.setDirtyLog(log.fd, LOG_SIZE)).errno());
            assertEquals(2, mappings("dirty-log-vmm"), "the refused log was not mapped; the current one stays");
            session.writeMemory(0x30_0000L, new byte[] {1});
            assertEquals(Map.of(0x60, 0x01), bits(log), "the current log still marks");

            // the session's end unmaps the last one
            session.close(); // what the connection's end does
            assertEquals(1, mappings("dirty-log-vmm"), "the session's end unmapped the log");
        } finally {
            daemon.close();
        }
    }

    /**
     * The migration CI saw fail: a virtio-iommu request's used-ring entry and status byte, written by
     * the daemon (virtio 1.2 §2.7.8, the device's used ring; virtio-iommu "Device operations", the
     * request's tail), mark their pages before IOMMU_SYNC_DIRTY_LOG is acked.
     */
    @Test
    void aVirtioIommuRequestsUsedRingAndStatusAreLogged() throws Exception {
        long ring = 0x20_0000L; // descriptors, avail and used rings of 16 entries: all in page 0x200
        long out = 0x30_0000L;  // the request's device-readable part: page 0x300, not written by the daemon
        long in = 0x40_0010L;   // its 4-byte tail: page 0x400
        Path socket = FakeVmm.socketPath("dirtylog-virtio");
        Daemon daemon = FakeVmm.daemon(socket, dev.iommuemu.bridge.device.virtio.VirtioIommuBridge.Factory.NAME, "");
        try (VmmClient vmm = VmmClient.connect(socket); FakeVmm.Memfd log = new FakeVmm.Memfd(LOG_SIZE, "dirty-log-virtio")) {
            vmm.addMemory(0, RAM);
            vmm.setFeatures((vmm.features() & ~(1L << dev.iommuemu.virtqueue.VirtqRing.F_EVENT_IDX))
                    | (1L << dev.iommuemu.bridge.protocol.Protocol.F_PROTOCOL_FEATURES));
            dev.iommuemu.virtqueue.DriverRing req = new dev.iommuemu.virtqueue.DriverRing(vmm.memory(), 16, ring);
            assertEquals(0x200, (req.end() - 1) >>> 12, "the ring lies in one page");
            vmm.setVringNum(0, 16);
            vmm.setVringAddr(0, req.descAddr(), req.availAddr(), req.usedAddr());
            vmm.setVringBase(0, 0);
            int call = vmm.vringCallEventFd(0);
            int kick = vmm.vringKickEventFd(0);
            vmm.setVringEnable(0, true);
            vmm.setDirtyLog(log.fd, LOG_SIZE);

            byte[] attach = dev.iommuemu.virtio.iommu.RequestGuest.attach(1, 1);
            vmm.memory().write(out, attach, 0, attach.length);
            vmm.memory().store(in, 4, 0xeeee_eeeeL);
            int head = req.add(List.of(dev.iommuemu.virtqueue.DriverRing.Buf.out(out, attach.length),
                    dev.iommuemu.virtqueue.DriverRing.Buf.in(in, 4)));
            req.publish(head);
            assertEquals(Map.of(), bits(log), "the VMM's own writes are not the daemon's to log");
            VmmClient.signalEventFd(kick);
            assertEquals(1, VmmClient.awaitEventFd(call, 5000), "the used-buffer notification");
            vmm.syncDirtyLog();
            assertEquals(new dev.iommuemu.virtqueue.DriverRing.Used(head, 4), req.popUsed());
            assertEquals(0, vmm.memory().load(in, 4).getAsLong(), "VIRTIO_IOMMU_S_OK");
            // page 0x200 (the used ring): byte 0x40 bit 0; page 0x400 (the tail): byte 0x80 bit 0
            assertEquals(Map.of(0x40, 0x01, 0x80, 0x01), bits(log));
            VmmClient.closeFd(call);
            VmmClient.closeFd(kick);
        } finally {
            daemon.close();
        }
    }

    /**
     * IOMMU_SYNC_DIRTY_LOG waits for model work under way on another thread (§4.11: a queue kick,
     * the translation ring, the control API run under the session lock, and the sync takes it):
     * while another thread holds the device and has not yet written, the sync is not acked; once it
     * writes and lets go, the ack comes and the written page's bit is already set.
     */
    @Test
    void theSyncWaitsForModelWorkUnderWay() throws Exception {
        Path socket = FakeVmm.socketPath("dirtylog-wait");
        Daemon daemon = FakeVmm.daemon(socket, "smmuv3", "");
        ExecutorService threads = Executors.newFixedThreadPool(2);
        CountDownLatch held = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        try (VmmClient vmm = VmmClient.connect(socket); FakeVmm.Memfd log = new FakeVmm.Memfd(LOG_SIZE, "dirty-log-wait")) {
            vmm.addMemory(0, RAM);
            DeviceSession session = daemon.registry().list().get(0);
            vmm.setDirtyLog(log.fd, LOG_SIZE);
            // model work under way: the device held (as a queue kick or the control API holds
            // it), a write into guest RAM still to come (page 0x500: byte 0xa0, bit 0)
            Future<Object> work = threads.submit(() -> session.withDevice(d -> {
                held.countDown();
                try {
                    if (!release.await(30, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("the test never released the device");
                    }
                    session.writeMemory(0x50_0008L, new byte[] {0x5a});
                } catch (InterruptedException | ProtocolException e) {
                    throw new IllegalStateException(e);
                }
                return null;
            }));
            assertTrue(held.await(10, TimeUnit.SECONDS), "the worker holds the device");
            Future<Map<Integer, Integer>> sync = threads.submit(() -> {
                vmm.syncDirtyLog();
                return bits(log); // the bitmap as the VMM reads it on the ack
            });
            assertThrows(TimeoutException.class, () -> sync.get(200, TimeUnit.MILLISECONDS),
                    "the sync must not be acked while model work is under way");
            assertEquals(Map.of(), bits(log), "nothing written yet");
            release.countDown();
            assertEquals(Map.of(0xa0, 0x01), sync.get(10, TimeUnit.SECONDS), "the write under way was logged before the ack");
            work.get(10, TimeUnit.SECONDS);
            assertEquals(0x5a, vmm.memory().load(0x50_0008L, 1).getAsLong());
        } finally {
            release.countDown();
            threads.shutdownNow();
            threads.awaitTermination(10, TimeUnit.SECONDS);
            daemon.close();
        }
    }

    @Test
    void refusals() throws Exception {
        Path socket = FakeVmm.socketPath("dirtylog-bad");
        Daemon daemon = FakeVmm.daemon(socket, "smmuv3", "");
        try (VmmClient vmm = VmmClient.connect(socket); FakeVmm.Memfd log = new FakeVmm.Memfd(8192, "dirty-log-bad");
                FakeVmm.Memfd unsealed = new FakeVmm.Memfd(8192, "dirty-log-unsealed", false)) {
            vmm.addMemory(0, RAM);
            // not a multiple of 8
            assertEquals(ProtocolException.EINVAL, assertThrows(RequestRefusedException.class, () -> vmm.setDirtyLog(log.fd, 12)).errno());
            // mmap_offset not page-aligned
            assertEquals(ProtocolException.EINVAL, assertThrows(RequestRefusedException.class,
                    () -> vmm.ack(Request.IOMMU_SET_DIRTY_LOG, new StatePayloads.DirtyLog(LOG_SIZE, 0x800).encode(), log.fd)).errno());
            // too small for the RAM mapped (16 MiB needs 512 bytes; 504 cover GPA below 0xfc_0000)
            assertEquals(ProtocolException.EINVAL, assertThrows(RequestRefusedException.class, () -> vmm.setDirtyLog(log.fd, LOG_SIZE - 8)).errno());
            assertEquals(ProtocolException.EINVAL, assertThrows(RequestRefusedException.class, () -> vmm.setDirtyLog(log.fd, 8)).errno());
            // size 0 (stop) with a descriptor
            assertEquals(ProtocolException.EINVAL, assertThrows(RequestRefusedException.class,
                    () -> vmm.ack(Request.IOMMU_SET_DIRTY_LOG, StatePayloads.DirtyLog.STOP.encode(), log.fd)).errno());
            // a log without its descriptor
            assertEquals(ProtocolException.EBADF, assertThrows(RequestRefusedException.class,
                    () -> vmm.ack(Request.IOMMU_SET_DIRTY_LOG, new StatePayloads.DirtyLog(8, 0).encode())).errno());
            // an unsealed memfd, which the daemon requires sealed by default
            assertEquals(ProtocolException.EFAULT, assertThrows(RequestRefusedException.class,
                    () -> vmm.setDirtyLog(unsealed.fd, LOG_SIZE)).errno());
            assertEquals(1, mappings("dirty-log-bad"), "the daemon mapped none of them: only the test's view");
            assertEquals(1, mappings("dirty-log-unsealed"));
            // the connection goes on: a log that covers the RAM exactly is taken, and marks
            DeviceSession session = daemon.registry().list().get(0);
            vmm.setDirtyLog(log.fd, LOG_SIZE);
            assertEquals(2, mappings("dirty-log-bad"));
            session.writeMemory(RAM - 1, new byte[] {1}); // the last page, 0xfff: byte 0x1ff, bit 7
            vmm.syncDirtyLog();
            assertEquals(0x80, log.view.get(LOG_SIZE - 1) & 0xff);
        } finally {
            daemon.close();
        }
    }
}
