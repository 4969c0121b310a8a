package dev.iommuemu.guest.virtio;

import dev.iommuemu.bridge.client.RequestRefusedException;
import dev.iommuemu.bridge.client.VmmClient;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * {@link VirtioTransport} over vhost-user, the way a VMM's vhost-user front-end carries a virtio
 * driver's transport operations to the daemon: features with GET/SET_FEATURES, config space with
 * GET/SET_CONFIG, device reset with RESET_DEVICE, and each queue with SET_VRING_NUM, SET_VRING_ADDR
 * (the VMM's virtual addresses of the rings, which the daemon turns back into guest physical ones
 * through the memory table, docs/protocol.md §3.1), SET_VRING_BASE, SET_VRING_CALL and
 * SET_VRING_KICK (eventfds) and SET_VRING_ENABLE. A notification is a write to the queue's kick
 * eventfd; the device answers asynchronously (its kick thread), so {@link #notify} on the request
 * queue waits, with a deadline, for the used-buffer notification on the call eventfd, as a guest
 * waits for the interrupt (or, with {@code strictCalls} off, e.g. under VIRTIO_F_EVENT_IDX where a
 * notification may be suppressed, for used->idx to move).
 */
public final class VhostUserTransport implements VirtioTransport, AutoCloseable {
    /** VHOST_USER_F_PROTOCOL_FEATURES (bit 30): set in SET_FEATURES, rings start disabled. */
    static final long F_PROTOCOL_FEATURES = 1L << 30;
    private static final int QUEUES = 2;
    private static final int DEADLINE_MS = 5000;

    private final VmmClient vmm;
    private final boolean strictCalls;
    private final int[] kick = {-1, -1};
    private final int[] call = {-1, -1};
    private final long[] used = new long[QUEUES];
    /** What happened, in order: "used N" when a request completed (for ordering checks). */
    public final List<String> log = new CopyOnWriteArrayList<>();
    private final int[] calls = new int[QUEUES];

    public VhostUserTransport(VmmClient vmm, boolean strictCalls) {
        this.vmm = vmm;
        this.strictCalls = strictCalls;
    }

    private static UncheckedIOException unchecked(String what, IOException e) {
        return new UncheckedIOException(what, e);
    }

    /** The call eventfd of queue {@code q} (-1 before the queue is enabled). */
    public int callFd(int q) {
        return call[q];
    }

    /** Used-buffer notifications seen on queue {@code q}'s call eventfd by {@link #notify}. */
    public int calls(int q) {
        return calls[q];
    }

    private void closeQueue(int q) {
        VmmClient.closeFd(kick[q]);
        VmmClient.closeFd(call[q]);
        kick[q] = -1;
        call[q] = -1;
    }

    @Override
    public void reset() {
        try {
            vmm.resetDevice();
        } catch (IOException e) {
            throw unchecked("RESET_DEVICE", e);
        }
        for (int q = 0; q < QUEUES; q++) {
            closeQueue(q);
        }
    }

    @Override
    public long deviceFeatures() {
        try {
            return vmm.features() & ~F_PROTOCOL_FEATURES;
        } catch (IOException e) {
            throw unchecked("GET_FEATURES", e);
        }
    }

    @Override
    public boolean setDriverFeatures(long features) {
        try {
            vmm.setFeatures(features | F_PROTOCOL_FEATURES);
            return true;
        } catch (RequestRefusedException e) {
            return false; // the device refused FEATURES_OK (virtio 1.x §3.1.1 step 6)
        } catch (IOException e) {
            throw unchecked("SET_FEATURES", e);
        }
    }

    @Override
    public long readConfig(int offset, int size) {
        try {
            byte[] b = vmm.getConfig(offset, size);
            long v = 0;
            for (int i = size - 1; i >= 0; i--) {
                v = (v << 8) | (b[i] & 0xff); // little-endian (virtio 1.x §4.1.3.1 config of VERSION_1 devices)
            }
            return v;
        } catch (IOException e) {
            throw unchecked("GET_CONFIG", e);
        }
    }

    @Override
    public void writeConfig(int offset, int size, long value) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        try {
            vmm.setConfig(offset, b);
        } catch (IOException e) {
            throw unchecked("SET_CONFIG", e);
        }
    }

    @Override
    public boolean setQueueSize(int q, int size) {
        try {
            vmm.setVringNum(q, size);
            return true;
        } catch (RequestRefusedException e) {
            return false;
        } catch (IOException e) {
            throw unchecked("SET_VRING_NUM", e);
        }
    }

    @Override
    public boolean setQueueAddresses(int q, long desc, long avail, long usedRing) {
        try {
            vmm.setVringAddr(q, desc, avail, usedRing);
            used[q] = usedRing;
            return true;
        } catch (RequestRefusedException e) {
            return false;
        } catch (IOException e) {
            throw unchecked("SET_VRING_ADDR", e);
        }
    }

    @Override
    public void setQueueEnabled(int q, boolean enabled) {
        try {
            if (enabled) {
                closeQueue(q);
                vmm.setVringBase(q, 0);
                call[q] = vmm.vringCallEventFd(q);
                kick[q] = vmm.vringKickEventFd(q); // starts the ring at the guest physical addresses
                vmm.setVringEnable(q, true);
            } else {
                vmm.getVringBase(q); // stops the ring
                closeQueue(q);
            }
        } catch (IOException e) {
            throw unchecked("vring " + q + " set-up", e);
        }
    }

    /**
     * Stops queue {@code q} with GET_VRING_BASE and starts it again from the index it returned
     * (SET_VRING_BASE, fresh call and kick eventfds, SET_VRING_ENABLE), as a VMM does around a
     * back-end restart or migration (vhost-user "Ring states"). Returns that index.
     */
    public int restartQueue(int q) {
        try {
            int base = vmm.getVringBase(q);
            closeQueue(q);
            vmm.setVringBase(q, base);
            call[q] = vmm.vringCallEventFd(q);
            kick[q] = vmm.vringKickEventFd(q);
            vmm.setVringEnable(q, true);
            return base;
        } catch (IOException e) {
            throw unchecked("vring " + q + " restart", e);
        }
    }

    /**
     * What a VMM front-end does for a queue the driver left unconfigured (queue_enable 0, rings at
     * address 0): it still sends the queue's SET_VRING_NUM (the queue's maximum size),
     * SET_VRING_ADDR with address 0, SET_VRING_BASE, SET_VRING_CALL, SET_VRING_KICK and
     * SET_VRING_ENABLE. The daemon must take these without error (docs/protocol.md §3).
     */
    public void setUpUnconfiguredQueue(int q, int maxSize) throws IOException {
        closeQueue(q);
        vmm.setVringNum(q, maxSize);
        vmm.ack(dev.iommuemu.bridge.protocol.Request.SET_VRING_ADDR,
                new dev.iommuemu.bridge.protocol.Payloads.VringAddr(q, 0, 0, 0, 0, 0).encode());
        vmm.setVringBase(q, 0);
        call[q] = vmm.vringCallEventFd(q);
        kick[q] = vmm.vringKickEventFd(q);
        vmm.setVringEnable(q, true);
    }

    /**
     * The driver configured queue {@code q} after all: the VMM sends its size and ring addresses
     * only (its kick and call eventfds are those given before), and the ring starts then.
     */
    public void configureLater(int q, int size, long desc, long avail, long usedRing) throws IOException {
        vmm.setVringNum(q, size);
        vmm.setVringAddr(q, desc, avail, usedRing);
        used[q] = usedRing;
    }

    private int usedIdx(int q) {
        // struct virtq_used { le16 flags; le16 idx; ... } (virtio 1.x §2.7.8)
        return (int) vmm.memory().load(used[q] + 2, 2).orElseThrow();
    }

    @Override
    public void notify(int q) {
        try {
            int before = q == 0 ? usedIdx(0) : 0;
            VmmClient.signalEventFd(kick[q]);
            if (q != 0) {
                return; // event buffers given to the device: nothing comes back until a fault
            }
            long deadline = System.nanoTime() + DEADLINE_MS * 1_000_000L;
            while (true) {
                long n = VmmClient.awaitEventFd(call[0], strictCalls ? DEADLINE_MS : 2);
                calls[0] += (int) n;
                if ((n > 0 || !strictCalls) && usedIdx(0) != before) {
                    log.add("used " + usedIdx(0));
                    return;
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("queue 0: no used-buffer notification within " + DEADLINE_MS + " ms");
                }
            }
        } catch (IOException e) {
            throw unchecked("kick " + q, e);
        }
    }

    @Override
    public void close() {
        for (int q = 0; q < QUEUES; q++) {
            closeQueue(q);
        }
    }
}
