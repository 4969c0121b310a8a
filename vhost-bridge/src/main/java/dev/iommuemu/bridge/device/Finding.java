package dev.iommuemu.bridge.device;

/**
 * A finding a device model makes about the guest's driver while it runs: today the SMMUv3's strict
 * mode (profile suffix "+strict"), whose findings are missed invalidations and conflicts
 * (dev.iommuemu.smmuv3.cache.CoherencyViolation, IHI 0070 §3.21, §4.3, §4.4). Model-neutral: the
 * daemon logs it, streams it and lists it without knowing the model.
 *
 * @param kind     what was found, e.g. "STE", "CD", "TLB", "TLB_CONFLICT", "CFG_CONFLICT"
 * @param streamId the StreamID (endpoint) whose access found it
 * @param ssid     the substream (CD index, PASID), or -1
 * @param address  the input address (TLB) or the structure's address (STE, CD)
 * @param stale    what the device holds
 * @param inMemory what guest memory holds now
 * @param remedy   the command sequence that would have prevented it
 * @param detail   all of it as one sentence (one log line, no line breaks)
 */
public record Finding(String kind, int streamId, int ssid, long address, String stale, String inMemory, String remedy,
        String detail) {
    public Finding {
        detail = oneLine(detail);
        stale = oneLine(stale);
        inMemory = oneLine(inMemory);
        remedy = oneLine(remedy);
    }

    private static String oneLine(String s) {
        return s == null ? "" : s.replaceAll("[\\r\\n]+", " ");
    }
}
