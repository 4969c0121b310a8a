package dev.iommuemu.bridge.fastpath;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;

/** The WARNING-and-above messages of the loggers it is added to (the hand-off tests' sentences to a person). */
final class WarningCapture extends Handler {
    private final List<LogRecord> records = new ArrayList<>();

    @Override
    public void publish(LogRecord r) {
        if (r.getLevel().intValue() >= Level.WARNING.intValue()) {
            synchronized (records) {
                records.add(r);
            }
        }
    }

    /** The messages so far, in order. */
    List<String> texts() {
        synchronized (records) {
            return records.stream().map(LogRecord::getMessage).toList();
        }
    }

    @Override
    public void flush() {}

    @Override
    public void close() {}
}
