package dev.iommuemu.bridge.session;

import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/** Fans {@link BridgeEvent}s out to subscribers (control-API event streams). Subscribers must not block. */
public final class EventBus {
    private final CopyOnWriteArrayList<Consumer<BridgeEvent>> subscribers = new CopyOnWriteArrayList<>();

    /** Adds a subscriber; run the returned action to remove it. */
    public Runnable subscribe(Consumer<BridgeEvent> s) {
        subscribers.add(s);
        return () -> subscribers.remove(s);
    }

    public void publish(BridgeEvent e) {
        for (Consumer<BridgeEvent> s : subscribers) {
            s.accept(e);
        }
    }
}
