package dev.iommuemu.smmuv3.ats;

/**
 * The SMMU's answer to a PCIe ATS Translation Request (IHI 0070 §3.9.1, PCIe ATS Translation
 * Completion): {@link Status#UR} when ATS is not allowed for the stream, {@link Status#CA} when its
 * configuration is invalid; otherwise a translation whose {@code read}/{@code write} grant may
 * both be false (the page is not accessible: the endpoint uses PRI or an untranslated access).
 *
 * @param translatedAddress the output address of the page
 * @param size              the translation's size in bytes (a power of two, at least 4 KiB)
 */
public record AtsResponse(Status status, long translatedAddress, long size, boolean read, boolean write,
        boolean exec, boolean priv) {

    public enum Status {
        SUCCESS,
        /** Unsupported Request (F_BAD_ATS_TREQ, or STE.Config abort). */
        UR,
        /** Completer Abort (invalid or ILLEGAL configuration, terminated substream; no event). */
        CA
    }

    public static AtsResponse unsupported() {
        return new AtsResponse(Status.UR, 0, 0, false, false, false, false);
    }

    public static AtsResponse completerAbort() {
        return new AtsResponse(Status.CA, 0, 0, false, false, false, false);
    }

    /**
     * A successful completion granting nothing (IHI 0070 §13.7: a translation-related fault), with
     * the request's Priv.
     */
    public static AtsResponse noAccess(boolean priv) {
        return new AtsResponse(Status.SUCCESS, 0, 4096, false, false, false, priv);
    }
}
