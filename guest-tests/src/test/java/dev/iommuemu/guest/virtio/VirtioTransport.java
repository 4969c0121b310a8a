package dev.iommuemu.guest.virtio;

import dev.iommuemu.virtio.iommu.VirtioIommuDevice;

/**
 * What a virtio driver needs from its transport (virtio 1.2 §3.1 device initialization and §4
 * transports, reduced to the calls a vhost-user back end sees): reset, feature negotiation, config
 * access, queue set-up and notification. {@link #direct} calls the device in-process; the daemon's
 * tests can implement it over the socket and reuse {@link VirtioIommuDriver} unchanged.
 */
public interface VirtioTransport {
    void reset();

    long deviceFeatures();

    boolean setDriverFeatures(long features);

    long readConfig(int offset, int size);

    void writeConfig(int offset, int size, long value);

    boolean setQueueSize(int q, int size);

    boolean setQueueAddresses(int q, long desc, long avail, long used);

    void setQueueEnabled(int q, boolean enabled);

    /** Available buffer notification (a kick). */
    void notify(int q);

    /** The in-process transport. */
    static VirtioTransport direct(VirtioIommuDevice dev) {
        return new VirtioTransport() {
            @Override public void reset() { dev.reset(); }
            @Override public long deviceFeatures() { return dev.deviceFeatures(); }
            @Override public boolean setDriverFeatures(long f) { return dev.setDriverFeatures(f); }
            @Override public long readConfig(int offset, int size) { return dev.readConfig(offset, size); }
            @Override public void writeConfig(int offset, int size, long value) { dev.writeConfig(offset, size, value); }
            @Override public boolean setQueueSize(int q, int size) { return dev.setQueueSize(q, size); }
            @Override public boolean setQueueAddresses(int q, long d, long a, long u) { return dev.setQueueAddresses(q, d, a, u); }
            @Override public void setQueueEnabled(int q, boolean on) { dev.setQueueEnabled(q, on); }
            @Override public void notify(int q) { dev.queueNotified(q); }
        };
    }
}
