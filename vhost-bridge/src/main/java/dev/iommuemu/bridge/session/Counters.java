package dev.iommuemu.bridge.session;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/** A set of {@link Counter}s, optionally also feeding a parent (the daemon-wide totals). */
public final class Counters {
    private final LongAdder[] values = new LongAdder[Counter.values().length];
    private final Counters parent;

    public Counters(Counters parent) {
        this.parent = parent;
        for (int i = 0; i < values.length; i++) {
            values[i] = new LongAdder();
        }
    }

    public void add(Counter c, long n) {
        values[c.ordinal()].add(n);
        if (parent != null) {
            parent.add(c, n);
        }
    }

    public void inc(Counter c) {
        add(c, 1);
    }

    public long get(Counter c) {
        return values[c.ordinal()].sum();
    }

    public Map<String, Long> snapshot() {
        Map<String, Long> m = new LinkedHashMap<>();
        for (Counter c : Counter.values()) {
            m.put(c.key(), get(c));
        }
        return m;
    }
}
