package dev.iommuemu.bridge.recording;

import dev.iommuemu.proto.v1.Effect;
import dev.iommuemu.proto.v1.MemoryBytes;
import dev.iommuemu.proto.v1.RecordedEntry;
import dev.iommuemu.proto.v1.RecordedOperation;
import dev.iommuemu.proto.v1.RecordedResult;
import dev.iommuemu.proto.v1.TranslateOp;

/** Recorded operations, effects and answers in words, for replay's sentences (docs/recording.md). */
final class Describe {
    private Describe() {}

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    private static String access(dev.iommuemu.proto.v1.RecordedAccess a) {
        return RecordingCodec.access(a).toString();
    }

    private static String translation(String what, TranslateOp t) {
        return what + " of endpoint " + t.getEndpoint() + (t.hasSubstream() ? " substream " + t.getSubstream() : "") + " iova "
                + hex(t.getIova()) + " " + access(t.getAccess());
    }

    /** What the operation asked, e.g. "MMIO read of 4 bytes at 0x9c". */
    static String operation(RecordedOperation op) {
        return switch (op.getOpCase()) {
            case MMIO_READ -> "MMIO read of " + op.getMmioRead().getSize() + " bytes at " + hex(op.getMmioRead().getOffset());
            case MMIO_WRITE -> "MMIO write of " + hex(op.getMmioWrite().getValue()) + " (" + op.getMmioWrite().getSize() + " bytes) at "
                    + hex(op.getMmioWrite().getOffset());
            case TRANSLATE -> translation("translation", op.getTranslate());
            case SPECULATE -> translation("speculative translation", op.getSpeculate());
            case ATS_TRANSLATE -> translation("ATS translation request", op.getAtsTranslate());
            case PREFETCH -> "prefetch of endpoint " + op.getPrefetch().getEndpoint() + " from " + hex(op.getPrefetch().getFrom()) + ", at most "
                    + op.getPrefetch().getMaxPages() + " pages";
            case PAGE_REQUEST -> "PRI page request of stream " + op.getPageRequest().getStreamId() + " at " + hex(op.getPageRequest().getAddress())
                    + " group " + op.getPageRequest().getGroupIndex();
            case CONFIG_READ -> "config read of " + op.getConfigRead().getLength() + " bytes at " + op.getConfigRead().getOffset();
            case CONFIG_WRITE -> "config write of " + op.getConfigWrite().getData().size() + " bytes at " + op.getConfigWrite().getOffset();
            case QUEUE_START -> "start of queue " + op.getQueueStart().getIndex();
            case QUEUE_STOP -> "stop of queue " + op.getQueueStop().getIndex();
            case QUEUE_NOTIFY -> "notification (kick) of queue " + op.getQueueNotify().getIndex();
            case SET_FEATURES -> "features " + hex(op.getSetFeatures().getFeatures());
            case SET_ENDPOINTS -> "endpoints " + op.getSetEndpoints().getIdsList();
            case RESET -> op.getReset().getSystem() ? "system reset" : "device reset";
            case CREATE -> "model " + op.getCreate().getModel() + " rebuilt";
            case LAYOUT -> "guest RAM layout change";
            case MSI_ABORTED -> "aborted MSI of " + hex(op.getMsiAborted().getData()) + " to " + hex(op.getMsiAborted().getAddress())
                    + " (source " + op.getMsiAborted().getSource() + ")";
            case INJECT -> "injected service failure mode";
            case OP_NOT_SET -> "an operation of a kind this build does not know";
        };
    }

    static String entry(RecordedEntry e) {
        return hex(e.getIova()) + " -> " + hex(e.getTranslatedAddr()) + " (mask " + hex(e.getAddrMask()) + ", perm " + hex(e.getPerm()) + ")";
    }

    static String result(RecordedResult r) {
        if (r.getIsAborted()) {
            return "aborted (" + r.getAborted() + ")";
        }
        if (r.getIsStalled()) {
            return "stalled (stream " + r.getStallStreamId() + ", STAG " + r.getStag() + ")";
        }
        if (r.hasTranslated()) {
            return "translated " + entry(r.getTranslated());
        }
        return "no translation";
    }

    /** What the operation returned, e.g. "0x1f" or "translated 0x1000 -> 0x5000 (mask 0xfff, perm 0x3f)". */
    static String answer(RecordedOperation op) {
        if (!op.getRefused().isEmpty()) {
            return "a refusal (" + op.getRefused() + ")";
        }
        return switch (op.getOpCase()) {
            case MMIO_READ -> hex(op.getMmioRead().getValue());
            case TRANSLATE -> result(op.getTranslate().getResult());
            case SPECULATE -> result(op.getSpeculate().getResult());
            case ATS_TRANSLATE -> result(op.getAtsTranslate().getResult());
            case PREFETCH -> {
                StringBuilder b = new StringBuilder(op.getPrefetch().getEntriesCount() + " entries");
                String sep = ": ";
                for (RecordedEntry e : op.getPrefetch().getEntriesList()) {
                    b.append(sep).append(entry(e));
                    sep = ", ";
                }
                yield b.toString();
            }
            case CONFIG_READ -> "bytes " + bytes(op.getConfigRead().getData().toByteArray(), 64);
            case QUEUE_STOP -> "next available index " + op.getQueueStop().getNextAvail();
            case MSI_ABORTED -> op.getMsiAborted().getActivated().isEmpty() ? "no error activated" : op.getMsiAborted().getActivated();
            case INJECT -> op.getInject().getEntered() ? "entered" : "already in it";
            default -> "nothing (it completed)";
        };
    }

    static String bytes(byte[] b, int max) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < b.length && i < max; i++) {
            s.append(i == 0 ? "" : " ").append(String.format("%02x", b[i] & 0xff));
        }
        if (b.length > max) {
            s.append(" ...");
        }
        return s.toString();
    }

    private static String memory(String what, MemoryBytes m) {
        return what + " of " + m.getData().size() + " bytes at " + hex(m.getAddress()) + " (" + bytes(m.getData().toByteArray(), 16) + ")";
    }

    /** What the model did, e.g. "a memory write of 32 bytes at 0x300000 (04 00 ...)". */
    static String effect(Effect e) {
        return switch (e.getEffectCase()) {
            case READ -> memory("a memory read", e.getRead());
            case WRITE -> memory("a memory write", e.getWrite());
            case ABORT -> "a lookup of " + e.getAbort().getLength() + " bytes at " + hex(e.getAbort().getAddress()) + " outside guest RAM";
            case IRQ -> "interrupt " + e.getIrq();
            case MSI -> "an MSI write of " + hex(e.getMsi().getData()) + " to " + hex(e.getMsi().getAddress())
                    + (e.getMsi().getSource() != 0 ? " (source " + e.getMsi().getSource() + ")" : "");
            case INVALIDATE -> "an IOTLB invalidation of endpoint " + e.getInvalidate().getEndpoint() + " iova " + hex(e.getInvalidate().getIova())
                    + " size " + hex(e.getInvalidate().getSize());
            case ATC_INVALIDATE -> "an ATC invalidation of stream " + e.getAtcInvalidate().getStreamId() + " substream "
                    + e.getAtcInvalidate().getSubstreamId() + " address " + hex(e.getAtcInvalidate().getAddress()) + " size "
                    + hex(e.getAtcInvalidate().getSize()) + (e.getAtcInvalidate().getGlobal() ? " (global)" : "");
            case PAGE_RESPONSE -> "a PRI response to stream " + e.getPageResponse().getStreamId() + " group " + e.getPageResponse().getGroupIndex()
                    + " code " + e.getPageResponse().getCode();
            case STALL_RESOLVED -> "a stall resolution of stream " + e.getStallResolved().getStreamId() + " STAG " + e.getStallResolved().getStag()
                    + (e.getStallResolved().getRetry() ? " (retry)" : " (abort)");
            case EFFECT_NOT_SET -> "something this build does not know";
        };
    }

    /** For two writes of the same place and length: where their bytes first differ. */
    static String byteDifference(Effect want, Effect got) {
        if (!want.hasWrite() || !got.hasWrite() || want.getWrite().getAddress() != got.getWrite().getAddress()
                || want.getWrite().getData().size() != got.getWrite().getData().size()) {
            return "";
        }
        byte[] a = want.getWrite().getData().toByteArray();
        byte[] b = got.getWrite().getData().toByteArray();
        for (int i = 0; i < a.length; i++) {
            if (a[i] != b[i]) {
                return String.format("; the first difference is at %s: the recording wrote 0x%02x, the model 0x%02x",
                        hex(want.getWrite().getAddress() + i), a[i] & 0xff, b[i] & 0xff);
            }
        }
        return "";
    }
}
