package dev.iommuemu.bridge.daemon;

import java.util.logging.LogManager;

/**
 * A LogManager whose handlers survive JVM shutdown: the JDK's own resets (closes) every handler
 * in a shutdown hook that races the daemon's, losing its last log lines ("daemon stopped").
 * Installed by Main through {@code java.util.logging.manager} before any logger exists. Console
 * handlers flush every record, so nothing is lost by never resetting.
 */
public final class DaemonLogManager extends LogManager {
    @Override
    public void reset() {
        // deliberately nothing: see the class comment
    }
}
