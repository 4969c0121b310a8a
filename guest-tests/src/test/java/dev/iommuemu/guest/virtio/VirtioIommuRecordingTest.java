package dev.iommuemu.guest.virtio;

import static dev.iommuemu.guest.virtio.VirtioIommuDriver.F_EVENT_IDX;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.recording.RecordingFile;
import dev.iommuemu.bridge.recording.Replay;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docs/recording.md with virtio-iommu: the spec-written driver's requests reach the model as kicks;
 * each kick is an operation with the queue memory the model read and the used-ring entries and
 * replies it wrote. The session replays identically; a MAP request changed in the recording is
 * reported where its effect first shows, the next translation of that mapping.
 */
class VirtioIommuRecordingTest {
    static final int OK = 0, READ = 1, WRITE = 2;
    static final long VMM_VA = 0x7f3a_0000_0000L;
    static final long ALL = VirtioIommuGuestTest.ALL & ~F_EVENT_IDX;

    @TempDir
    Path dir;
    GuestDaemon daemon;
    VmmClient vmm;
    VhostUserTransport transport;

    @AfterEach
    void stop() {
        if (transport != null) {
            transport.close();
        }
        if (vmm != null) {
            vmm.close();
        }
        if (daemon != null) {
            daemon.close();
        }
    }

    Path recordSession() throws Exception {
        daemon = new GuestDaemon("virtio-iommu", "default", new DaemonConfig.Recording(dir + "/v.iommurec", 64L << 20));
        vmm = daemon.connect();
        vmm.addMemory(0, 4L << 20, VMM_VA);
        transport = new VhostUserTransport(vmm, true);
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                return 0;
            }
        });
        VirtioIommuDriver d = new VirtioIommuDriver(transport, vmm.memory(), 1);
        assertTrue(d.init(ALL, 64, 8, 24));
        assertEquals(OK, d.attach(1, 3, 0));
        assertEquals(OK, d.map(1, 0x10_0000, 0x10_ffff, 0x4000_0000L, READ | WRITE));
        assertEquals(0x4000_1234L, vmm.translate(3, -1, 0x10_1234, Payloads.ACCESS_WRITE).result().output());
        assertEquals("VIRTIO_IOMMU_FAULT_R_MAPPING", vmm.translate(3, -1, 0x20_0000, 0).reason());
        assertEquals(1, VmmClient.awaitEventFd(transport.callFd(1), 2000), "the fault event's notification");
        assertEquals(OK, d.unmap(1, 0x10_0000, 0x10_ffff));
        assertEquals(OK, d.probe(3).status());
        d.writeBypass(1);
        vmm.systemReset();
        transport.close();
        transport = null;
        vmm.close();
        vmm = null;
        assertTrue(daemon.awaitNoConnections());
        return dir.resolve("v.iommurec.1");
    }

    @Test
    void aRecordedVirtioIommuSessionReplaysIdentically() throws Exception {
        Path file = recordSession();
        List<RecordedOperation> ops = new ArrayList<>();
        RecordingHeader h;
        try (RecordingFile f = RecordingFile.open(file)) {
            h = f.header();
            for (RecordedOperation op = f.next(); op != null; op = f.next()) {
                ops.add(op);
            }
        }
        assertEquals("virtio-iommu", h.getModel());
        assertEquals(List.of(0L), h.getRamList().stream().map(r -> r.getGuestPhysAddr()).toList());
        assertTrue(ops.stream().anyMatch(o -> o.hasQueueStart()), "queues started");
        assertTrue(ops.stream().anyMatch(o -> o.hasConfigRead()), "config read");
        // The UNMAP's kick: the invalidation to the VMM, then the used-buffer notification "vq0".
        assertTrue(ops.stream().anyMatch(o -> o.hasQueueNotify() && o.getEffectsList().stream().anyMatch(e -> e.hasInvalidate()
                && e.getInvalidate().getEndpoint() == 3 && e.getInvalidate().getIova() == 0x10_0000 && e.getInvalidate().getSize() == 0x10000)
                && o.getEffectsList().stream().anyMatch(e -> "vq0".equals(e.getIrq()))), "the UNMAP's kick");
        assertTrue(ops.stream().anyMatch(o -> o.hasReset() && o.getReset().getSystem()));
        assertEquals("replay: " + ops.size() + " operations, identical", Replay.run(file, DeviceRegistry.discover()).sentence());

        // The MAP request as the model read it: virt_end 0x10ffff then phys_start 0x40000000 (struct
        // virtio_iommu_req_map, little-endian). Make phys_start 0x40010000 in the recording.
        byte[] pattern = {(byte) 0xff, (byte) 0xff, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0};
        int mapOp = -1;
        for (int i = 0; i < ops.size() && mapOp < 0; i++) {
            RecordedOperation.Builder b = ops.get(i).toBuilder();
            for (int k = 0; k < b.getEffectsCount(); k++) {
                Effect e = b.getEffects(k);
                int at = e.hasRead() ? indexOf(e.getRead().getData().toByteArray(), pattern) : -1;
                if (at >= 0) {
                    byte[] data = e.getRead().getData().toByteArray();
                    data[at + 8 + 2] = 1;
                    b.setEffects(k, Effect.newBuilder().setRead(e.getRead().toBuilder().setData(ByteString.copyFrom(data))));
                    ops.set(i, b.build());
                    mapOp = i;
                    break;
                }
            }
        }
        assertTrue(mapOp >= 0 && ops.get(mapOp).hasQueueNotify(), "the MAP was read in a kick");
        int translation = -1;
        for (int i = mapOp; i < ops.size() && translation < 0; i++) {
            if (ops.get(i).hasTranslate()) {
                translation = i;
            }
        }
        Path bad = dir.resolve("bad.iommurec");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(bad))) {
            out.write(RecordingFile.MAGIC);
            h.writeDelimitedTo(out);
            for (RecordedOperation op : ops) {
                op.writeDelimitedTo(out);
            }
        }
        // The kick itself still answers OK; the mapping it made differs at the next translation.
        assertEquals("replay: operation " + translation + " (translation of endpoint 3 iova 0x101234 write) diverges: the recording "
                + "answered translated 0x100000 -> 0x40000000 (mask 0xffff, perm 0x3f); the model answered translated 0x100000 -> "
                + "0x40010000 (mask 0xffff, perm 0x3f)", Replay.run(bad, DeviceRegistry.discover()).sentence());
    }

    static int indexOf(byte[] data, byte[] pattern) {
        outer:
        for (int i = 0; i + pattern.length <= data.length; i++) {
            for (int j = 0; j < pattern.length; j++) {
                if (data[i + j] != pattern[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
