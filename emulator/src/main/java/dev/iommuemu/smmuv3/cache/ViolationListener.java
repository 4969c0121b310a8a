package dev.iommuemu.smmuv3.cache;

/**
 * Where a device hands strict mode's findings as it makes them (the daemon's session logs them and
 * streams them to its clients). Called synchronously on the model's thread, once per finding
 * (each stale entry once: {@link ReportedEntries}); it must not call back into the model.
 */
@FunctionalInterface
public interface ViolationListener {
    ViolationListener NONE = v -> {};

    void found(CoherencyViolation v);
}
