package dev.iommuemu.guest.smmuv3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.iommuemu.bridge.client.VmmClient;
import dev.iommuemu.bridge.daemon.DaemonConfig;
import dev.iommuemu.bridge.device.DeviceRegistry;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.recording.RecordingFile;
import dev.iommuemu.bridge.recording.Replay;
import dev.iommuemu.guest.socket.GuestDaemon;
import dev.iommuemu.guest.socket.SocketMmio;
import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.MemoryBytes;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordingHeader;
import dev.iommuemu.smmuv3.PageTables;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * docs/recording.md with SMMUv3: the spec-written driver programs the real daemon through the
 * socket with --record on; the recording replays identically against a fresh model, and a
 * recording with one answer or one input byte changed is reported at exactly that operation.
 */
class Smmuv3RecordingTest {
    static final long RAM = 32L << 20;
    static final long STRTAB = 0x10_0000, CMDQ = 0x20_0000, EVTQ = 0x30_0000, PRIQ = 0x38_0000;
    static final long CDS = 0x40_0000, TABLES = 0x100_0000;
    static final long VA = 0x8080_8000L;

    @TempDir
    Path dir;
    GuestDaemon daemon;
    VmmClient vmm;

    @BeforeEach
    void start() throws Exception {
        daemon = new GuestDaemon("smmuv3", "default", new DaemonConfig.Recording(dir.resolve("s{session}.iommurec").toString(), 64L << 20));
    }

    @AfterEach
    void stop() {
        if (vmm != null) {
            vmm.close();
        }
        daemon.close();
    }

    /**
     * A Linux-like session: probe, a stage 1 stream, translations (a TLB miss and a hit), a
     * translation run with its prefetch, an unmap with TLBI + CMD_SYNC (an invalidation the VMM
     * acknowledges), a fault with its event record and interrupt, a bad STE. Returns the file.
     */
    Path recordSession() throws Exception {
        vmm = daemon.connect();
        vmm.addMemory(0, RAM);
        vmm.serveBackend(new VmmClient.BackendListener() {
            @Override
            public long iotlbInvalidate(Payloads.IotlbInvalidate inv) {
                return 0;
            }
        });
        Smmuv3Driver drv = new Smmuv3Driver(new SocketMmio(vmm), vmm.memory(), STRTAB, 5, CMDQ, 8, EVTQ, 6, PRIQ);
        drv.probe(true);
        PageTables pt = new PageTables(vmm.memory(), TABLES);
        long root = pt.s1Root();
        pt.map(root, VA, 0x5000_0000L, PageTables.S1_RW);
        pt.map(root, VA + 0x1000, 0x5000_3000L, PageTables.S1_RW);
        long[] cd = Smmuv3Driver.cd(root, 0x1e20, 0x10, 4);
        for (int i = 0; i < 8; i++) {
            vmm.memory().store(CDS + 8L * i, 8, cd[i]);
        }
        drv.writeSte(5, Smmuv3Driver.steS1(CDS, 0, 0));
        assertEquals(0x5000_0abcL, vmm.translate(5, -1, VA + 0xabc, 0).result().output());
        assertEquals(0x5000_0008L, vmm.translate(5, -1, VA + 8, Payloads.ACCESS_WRITE).result().output());
        assertEquals(1, vmm.translateRun(5, -1, VA + 0x10, 0, 4).entries().size());
        vmm.memory().store(pt.leaf(root, VA, 3), 8, 0);
        drv.cmds(new long[] {Smmuv3Driver.CMD_TLBI_NH_VA | (0x1e20L << 48), VA}, new long[] {Smmuv3Driver.CMD_SYNC, 0});
        assertEquals("F_TRANSLATION", vmm.translate(5, -1, VA + 0x10, Payloads.ACCESS_WRITE).reason());
        assertEquals("C_BAD_STE", vmm.translate(0x16, -1, 0x1000, 0).reason());
        assertEquals(2, drv.drainEvents().size());
        vmm.close();
        vmm = null;
        assertTrue(daemon.awaitNoConnections(), "the session closed, and its recording with it");
        Path file = dir.resolve("s1.iommurec");
        assertTrue(Files.size(file) > 100, "written");
        return file;
    }

    static List<RecordedOperation> operations(Path file) throws IOException {
        List<RecordedOperation> ops = new ArrayList<>();
        try (RecordingFile f = RecordingFile.open(file)) {
            for (RecordedOperation op = f.next(); op != null; op = f.next()) {
                ops.add(op);
            }
            assertFalse(f.truncated());
        }
        return ops;
    }

    /** Writes {@code header} and {@code ops} as a recording (the format docs/recording.md gives). */
    static Path write(Path file, RecordingHeader header, List<RecordedOperation> ops) throws IOException {
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(file))) {
            out.write(RecordingFile.MAGIC);
            header.writeDelimitedTo(out);
            for (RecordedOperation op : ops) {
                op.writeDelimitedTo(out);
            }
        }
        return file;
    }

    /** The recording with operation {@code index} changed by {@code edit}. */
    Path tampered(Path file, int index, UnaryOperator<RecordedOperation> edit) throws IOException {
        RecordingHeader h;
        try (RecordingFile f = RecordingFile.open(file)) {
            h = f.header();
        }
        List<RecordedOperation> ops = operations(file);
        ops.set(index, edit.apply(ops.get(index)));
        return write(dir.resolve("tampered.iommurec"), h, ops);
    }

    /** The index of the first operation that is a translation of {@code iova}. */
    static int translationOf(List<RecordedOperation> ops, long iova) {
        for (int i = 0; i < ops.size(); i++) {
            if (ops.get(i).hasTranslate() && ops.get(i).getTranslate().getIova() == iova) {
                return i;
            }
        }
        throw new AssertionError("no translation of 0x" + Long.toHexString(iova));
    }

    /** The index of the translation that faulted after the unmap (the write of VA + 0x10). */
    static int faultOf(List<RecordedOperation> ops) {
        for (int i = 0; i < ops.size(); i++) {
            if (ops.get(i).hasTranslate() && ops.get(i).getTranslate().getIova() == VA + 0x10 && ops.get(i).getTranslate().getAccess().getWrite()) {
                return i;
            }
        }
        throw new AssertionError("no fault");
    }

    @Test
    void aRecordedSessionReplaysIdentically() throws Exception {
        Path file = recordSession();
        RecordingHeader h;
        try (RecordingFile f = RecordingFile.open(file)) {
            h = f.header();
        }
        assertEquals(1, h.getFormatVersion());
        assertEquals("smmuv3", h.getModel());
        assertEquals("default", h.getProfile());
        assertTrue(h.getOrigin().startsWith("vhost-user fd "), h.getOrigin());
        assertFalse(h.getMidSession());
        List<RecordedOperation> ops = operations(file);
        // What the model got and answered, in order: the translation that missed read the STE (64
        // bytes at STRTAB + 5 * 64), the CD and the walk; its answer is the page at 0x50000000.
        RecordedOperation miss = ops.get(translationOf(ops, VA + 0xabc));
        assertEquals(0x5000_0000L, miss.getTranslate().getResult().getTranslated().getTranslatedAddr());
        assertEquals(0xfffL, miss.getTranslate().getResult().getTranslated().getAddrMask());
        assertTrue(miss.getEffectsList().stream().anyMatch(e -> e.hasRead() && e.getRead().getAddress() == STRTAB + 5 * 64
                && e.getRead().getData().size() == 64), miss.toString());
        RecordedOperation hit = ops.get(translationOf(ops, VA + 8));
        assertEquals(0, hit.getEffectsCount(), "a TLB hit reads nothing");
        // The fault wrote its F_TRANSLATION record (type 0x10, StreamID 5) to the event queue and raised evtq.
        RecordedOperation fault = ops.get(faultOf(ops));
        assertTrue(fault.getTranslate().getResult().getIsAborted(), fault.toString());
        List<Effect> outputs = fault.getEffectsList().stream().filter(e -> !e.hasRead()).toList();
        assertEquals(2, outputs.size(), outputs.toString());
        assertEquals(EVTQ, outputs.get(0).getWrite().getAddress());
        assertEquals(ByteString.copyFrom(new byte[] {0x10, 0, 0, 0, 5, 0, 0, 0}), outputs.get(0).getWrite().getData().substring(0, 8));
        assertEquals("evtq", outputs.get(1).getIrq());
        assertTrue(ops.stream().anyMatch(o -> o.hasPrefetch() && o.getPrefetch().getEntriesCount() == 1));
        assertTrue(ops.stream().anyMatch(o -> o.getEffectsList().stream().anyMatch(e -> e.hasInvalidate()
                && e.getInvalidate().getIova() == VA && e.getInvalidate().getSize() == 0x1000)), "the TLBI's invalidation to the VMM");

        Replay.Outcome o = Replay.run(file, DeviceRegistry.discover());
        assertEquals("replay: " + ops.size() + " operations, identical", o.sentence());
        assertTrue(o.identical());
        assertEquals(ops.size(), o.operations());
    }

    @Test
    void aChangedTranslationResultIsTheFirstDivergence() throws Exception {
        Path file = recordSession();
        List<RecordedOperation> ops = operations(file);
        int i = translationOf(ops, VA + 0xabc);
        Path bad = tampered(file, i, op -> {
            RecordedOperation.Builder b = op.toBuilder();
            b.getTranslateBuilder().getResultBuilder().getTranslatedBuilder().setTranslatedAddr(0x5000_1000L);
            return b.build();
        });
        Replay.Outcome o = Replay.run(bad, DeviceRegistry.discover());
        assertFalse(o.identical());
        assertEquals("replay: operation " + i + " (translation of endpoint 5 iova 0x80808abc read) diverges: the recording answered "
                + "translated 0x80808000 -> 0x50001000 (mask 0xfff, perm 0x1f); the model answered "
                + "translated 0x80808000 -> 0x50000000 (mask 0xfff, perm 0x1f)", o.sentence());
        assertEquals(i + 1, o.operations());
    }

    @Test
    void aChangedMemoryReadChangesTheAnswerAtThatOperation() throws Exception {
        Path file = recordSession();
        List<RecordedOperation> ops = operations(file);
        int i = translationOf(ops, VA + 0xabc);
        // The walk's last read is the leaf descriptor: its output address bits [47:12] start at byte 1
        // (bit 12 is bit 4 of byte 1); set bit 12, as if the guest had mapped 0x50001000.
        Path bad = tampered(file, i, op -> {
            RecordedOperation.Builder b = op.toBuilder();
            int last = -1;
            for (int k = 0; k < b.getEffectsCount(); k++) {
                if (b.getEffects(k).hasRead()) {
                    last = k;
                }
            }
            MemoryBytes leaf = b.getEffects(last).getRead();
            byte[] data = leaf.getData().toByteArray();
            data[data.length - 8 + 1] |= 0x10;
            b.setEffects(last, Effect.newBuilder().setRead(leaf.toBuilder().setData(ByteString.copyFrom(data))));
            return b.build();
        });
        Replay.Outcome o = Replay.run(bad, DeviceRegistry.discover());
        assertEquals("replay: operation " + i + " (translation of endpoint 5 iova 0x80808abc read) diverges: the recording answered "
                + "translated 0x80808000 -> 0x50000000 (mask 0xfff, perm 0x1f); the model answered "
                + "translated 0x80808000 -> 0x50001000 (mask 0xfff, perm 0x1f)", o.sentence());
    }

    @Test
    void aReadTheRecordingDoesNotHaveIsNamed() throws Exception {
        Path file = recordSession();
        List<RecordedOperation> ops = operations(file);
        int i = translationOf(ops, VA + 0xabc);
        // Drop the STE the translation read: the model reads 64 bytes at STRTAB + 5 * 64 that are not there.
        Path bad = tampered(file, i, op -> {
            RecordedOperation.Builder b = op.toBuilder();
            for (int k = 0; k < b.getEffectsCount(); k++) {
                if (b.getEffects(k).hasRead() && b.getEffects(k).getRead().getAddress() == STRTAB + 5 * 64) {
                    b.removeEffects(k);
                    return b.build();
                }
            }
            throw new AssertionError("no STE read in " + op);
        });
        Replay.Outcome o = Replay.run(bad, DeviceRegistry.discover());
        assertTrue(o.sentence().startsWith("replay: operation " + i + " (translation of endpoint 5 iova 0x80808abc read) diverges: "
                + "the model read 64 bytes at 0x100140, and the recording does not have [0x100140, 0x100180) (the recording's reads "
                + "in this operation: 64 bytes at 0x400000, "), o.sentence());
    }

    @Test
    void aChangedEventRecordIsNamedByteForByte() throws Exception {
        Path file = recordSession();
        List<RecordedOperation> ops = operations(file);
        int i = faultOf(ops);
        Path bad = tampered(file, i, op -> {
            RecordedOperation.Builder b = op.toBuilder();
            for (int k = 0; k < b.getEffectsCount(); k++) {
                if (b.getEffects(k).hasWrite()) {
                    byte[] data = b.getEffects(k).getWrite().getData().toByteArray();
                    data[4] = 6; // StreamID 6 instead of 5
                    b.setEffects(k, Effect.newBuilder().setWrite(b.getEffects(k).getWrite().toBuilder().setData(ByteString.copyFrom(data))));
                    return b.build();
                }
            }
            throw new AssertionError("no event write in " + op);
        });
        Replay.Outcome o = Replay.run(bad, DeviceRegistry.discover());
        assertTrue(o.sentence().startsWith("replay: operation " + i + " (translation of endpoint 5 iova 0x80808010 write) diverges: "
                + "the recording has a memory write of 32 bytes at 0x300000 (10 00 00 00 06 00 00 00 "), o.sentence());
        assertTrue(o.sentence().endsWith("; the first difference is at 0x300004: the recording wrote 0x06, the model 0x05"), o.sentence());
    }

    /** A daemon killed while recording leaves a file cut anywhere: what it holds replays, and replay says it was cut. */
    @Test
    void aFileCutShortReplaysWhatItHolds() throws Exception {
        Path file = recordSession();
        byte[] whole = Files.readAllBytes(file);
        Path cut = dir.resolve("cut.iommurec");
        Files.write(cut, java.util.Arrays.copyOf(whole, whole.length * 2 / 3));
        Replay.Outcome o = Replay.run(cut, DeviceRegistry.discover());
        assertTrue(o.identical(), o.sentence());
        assertTrue(o.truncated());
        assertTrue(o.operations() > 0 && o.operations() < operations(file).size(), o.sentence());
        assertEquals("replay: " + o.operations() + " operations, identical; the file was cut short after them (the daemon did not close "
                + "the recording)", o.sentence());
    }

    @Test
    void anotherFormatVersionIsRefusedWithASentence() throws Exception {
        Path file = recordSession();
        RecordingHeader h;
        try (RecordingFile f = RecordingFile.open(file)) {
            h = f.header();
        }
        Path v2 = write(dir.resolve("v2.iommurec"), h.toBuilder().setFormatVersion(2).build(), operations(file));
        IOException e = assertThrows(IOException.class, () -> Replay.run(v2, DeviceRegistry.discover()));
        assertEquals(v2 + " is a recording of format version 2 (written by iommu-emu 0.1.0); this build reads format version 1 "
                + "only: replay it with the iommu-emu-ctl of a matching version", e.getMessage());
        Path notOne = dir.resolve("plain.txt");
        Files.writeString(notOne, "hello");
        assertEquals(notOne + " is not an iommu-emu recording (not a gzip file: Not in GZIP format)",
                assertThrows(IOException.class, () -> Replay.run(notOne, DeviceRegistry.discover())).getMessage());
    }
}
