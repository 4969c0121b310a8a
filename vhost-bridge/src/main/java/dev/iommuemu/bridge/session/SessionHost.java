package dev.iommuemu.bridge.session;

import dev.iommuemu.bridge.protocol.BackendRequest;
import dev.iommuemu.bridge.protocol.Payloads;
import dev.iommuemu.bridge.unix.LibC;
import dev.iommuemu.dma.DmaHost;
import dev.iommuemu.dma.IotlbInvalidation;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * The {@link DmaHost} of one session: interrupt lines to the eventfds of IOMMU_SET_IRQ_FD,
 * "vqN" lines to the SET_VRING_CALL eventfds, MSIs and IOTLB invalidations to the back-end channel.
 * Runs on the thread of the model call that raised it (holding the session lock). Without a
 * back-end channel there is no VMM cache to invalidate and no one to deliver MSIs to: both are
 * counted and published as events only.
 */
final class SessionHost implements DmaHost, dev.iommuemu.bridge.device.EndpointHost, AutoCloseable {
    private static final Logger LOG = Logger.getLogger(SessionHost.class.getName());

    private final DeviceSession session;
    private final EventFd eventFd = new EventFd();
    private final Map<Integer, Signal> irqFds = new HashMap<>();
    private final Map<Integer, Signal> callFds = new HashMap<>();
    /** vEVENT / fault queue id -> the eventfd of IOMMUFD_SET_EVENTQ_FD (docs/protocol.md §4.6). */
    private final Map<Integer, Signal> eventqFds = new HashMap<>();

    /**
     * An eventfd the VMM gave, with the signals in flight on it. A replaced or removed one is closed
     * when its last signal is done, never under a signal: its number could otherwise go to the next
     * descriptor the VMM sends (a memfd of guest RAM) and the late write would land there.
     */
    private static final class Signal {
        final int fd;
        int inFlight;
        boolean retired;

        Signal(int fd) {
            this.fd = fd;
        }
    }

    /** Retires {@code old} (under the lock): closed now, or by its last signal. */
    private static void retire(Signal old) {
        if (old != null) {
            old.retired = true;
            if (old.inFlight == 0) {
                LibC.closeQuietly(old.fd);
            }
        }
    }
    private volatile List<String> lines = List.of();
    private BackendChannel backend;

    SessionHost(DeviceSession session) {
        this.session = session;
    }

    synchronized void setLines(List<String> names) {
        lines = List.copyOf(names);
    }

    /** Installs (or with fd -1 removes) the eventfd of interrupt line {@code index}; closes the old one. */
    synchronized void setIrqFd(int index, int fd) {
        retire(fd >= 0 ? irqFds.put(index, new Signal(fd)) : irqFds.remove(index));
    }

    synchronized void setCallFd(int queue, int fd) {
        retire(fd >= 0 ? callFds.put(queue, new Signal(fd)) : callFds.remove(queue));
    }

    /** Installs (or with fd -1 removes) the eventfd of nesting queue {@code queueId}; retires the old one. */
    synchronized void setEventqFd(int queueId, int fd) {
        retire(fd >= 0 ? eventqFds.put(queueId, new Signal(fd)) : eventqFds.remove(queueId));
    }

    /** Retires every queue eventfd (the host model they belonged to is gone). */
    synchronized void clearEventqFds() {
        eventqFds.values().forEach(SessionHost::retire);
        eventqFds.clear();
    }

    /**
     * Records became readable in nesting queues: each queue's eventfd gets their number added
     * (eventfd(2): a write adds to the counter), as an iommufd queue fd turns readable. Called
     * without the session lock; written outside this object's lock, closed after its last signal
     * as {@link #raiseIrq} does. Published as "vevent" / "iopf" events for the control API.
     */
    void eventqsReadable(List<dev.iommuemu.iommufd.Iommufd.Readable> ready) {
        for (dev.iommuemu.iommufd.Iommufd.Readable r : ready) {
            session.publish(r.faultQueue() ? BridgeEvent.IOPF : BridgeEvent.VEVENT,
                    String.format("queue=%d records=%d", r.queueId(), r.entries()));
            Signal fd;
            synchronized (this) {
                fd = eventqFds.get(r.queueId());
                if (fd != null) {
                    fd.inFlight++;
                }
            }
            if (fd == null) {
                continue;
            }
            boolean ok = eventFd.add(fd.fd, r.entries());
            synchronized (this) {
                if (--fd.inFlight == 0 && fd.retired) {
                    LibC.closeQuietly(fd.fd);
                }
            }
            if (!ok) {
                LOG.warning("session " + session.id() + ": queue " + r.queueId() + ": eventfd write failed");
            }
        }
    }

    synchronized void setBackend(BackendChannel channel) {
        if (backend != null) {
            backend.close();
        }
        backend = channel;
    }

    synchronized boolean hasBackend() {
        return backend != null;
    }

    @Override
    public void raiseIrq(String line) {
        session.counters().inc(Counter.IRQS);
        session.publish(BridgeEvent.IRQ, line);
        session.journalBeforeSignal(); // §4.10: the state that raised it is in the restart journal first
        session.refreshMirror(); // §4.8: the guest woken by it reads the registers that caused it
        Signal fd;
        synchronized (this) {
            if (line.startsWith("vq")) {
                fd = callFds.get(parseQueue(line));
            } else {
                int idx = lines.indexOf(line);
                fd = idx < 0 ? null : irqFds.get(idx);
            }
            if (fd != null) {
                fd.inFlight++;
            }
        }
        if (fd == null) {
            LOG.fine(() -> "session " + session.id() + ": irq " + line + " has no eventfd; dropped");
            return;
        }
        // Written outside the lock: a VMM that lets its eventfd's counter reach the maximum blocks
        // only this write, not the connection replacing the fd.
        boolean ok = eventFd.signal(fd.fd);
        synchronized (this) {
            if (--fd.inFlight == 0 && fd.retired) {
                LibC.closeQuietly(fd.fd);
            }
        }
        if (!ok) {
            LOG.warning("session " + session.id() + ": irq " + line + ": eventfd write failed");
        }
    }

    private static int parseQueue(String line) {
        try {
            return Integer.parseInt(line.substring(2));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** The model is about to let the guest see its state (a virtio used buffer): into the restart journal (§4.10). */
    @Override
    public void checkpoint() {
        session.checkpoint();
    }

    /** docs/protocol.md §4.8 walk recipes: emptied before the change that staled them completes. */
    @Override
    public void configurationChanged() {
        session.clearRecipes();
    }

    @Override
    public void msi(long address, int data) {
        msi(address, data, dev.iommuemu.dma.MsiSource.OTHER);
    }

    /** IOMMU_MSI tagged with its source (docs/protocol.md §5, version 8), which IOMMU_MSI_ABORTED returns. */
    @Override
    public void msi(long address, int data, dev.iommuemu.dma.MsiSource source) {
        session.counters().inc(Counter.MSIS);
        session.journalBeforeSignal();
        session.refreshMirror();
        session.publish(BridgeEvent.MSI, String.format("address=0x%x data=0x%x source=%s", address, data,
                source.name().toLowerCase(java.util.Locale.ROOT)));
        BackendChannel b;
        synchronized (this) {
            b = backend;
        }
        if (b == null) {
            return;
        }
        try {
            b.post(BackendRequest.IOMMU_MSI, new Payloads.MsiWrite(address, data, source.code()).encode());
        } catch (Exception e) {
            session.fail("MSI on the back-end channel failed: " + e.getMessage());
        }
    }

    @Override
    public void invalidate(IotlbInvalidation inv) {
        session.counters().inc(Counter.INVALIDATIONS);
        session.publish(BridgeEvent.INVALIDATE, String.format("endpoint=%d iova=0x%x size=0x%x", inv.endpoint(), inv.iova(), inv.size()));
        // docs/protocol.md §4.8: invalidated in place; a message only for the VMM's IOMMU notifiers
        if (!session.invalidateShared(inv)) {
            session.counters().inc(Counter.SHARED_INVALIDATIONS);
            return;
        }
        BackendChannel b;
        synchronized (this) {
            b = backend;
        }
        if (b == null) {
            return;
        }
        try {
            long status = b.call(BackendRequest.IOMMU_IOTLB_INVALIDATE,
                    new Payloads.IotlbInvalidate(inv.endpoint(), 0, inv.iova(), inv.size()).encode());
            if (status != 0) {
                LOG.warning("session " + session.id() + ": front-end refused IOTLB invalidation " + inv + " with status " + status);
            }
        } catch (Exception e) {
            // The VMM may still hold the translation: its cache can no longer be trusted. The
            // connection closes with this reason as its one log line.
            session.fail("IOTLB invalidation " + inv + " not acknowledged: " + e.getMessage());
        }
    }

    /** docs/protocol.md §4.8: straight into the VMM's shared cache, when it has one. */
    @Override
    public void prefill(int endpoint, dev.iommuemu.dma.IotlbEntry entry) {
        session.prefillShared(endpoint, entry);
    }

    @Override
    public void atcInvalidate(int streamId, int substreamId, long address, long size) {
        atcInvalidate(streamId, substreamId, address, size, false);
    }

    @Override
    public void atcInvalidate(int streamId, int substreamId, long address, long size, boolean global) {
        session.counters().inc(Counter.ATC_INVALIDATIONS);
        session.publish(BridgeEvent.ATC_INVALIDATE, String.format("sid=%d ssid=%d address=0x%x size=0x%x%s", streamId, substreamId, address, size,
                global ? " global" : ""));
        BackendChannel b;
        synchronized (this) {
            b = backend;
        }
        if (b == null) {
            return;
        }
        try {
            long status = b.call(BackendRequest.IOMMU_ATC_INVALIDATE, new Payloads.AtcInvalidate(streamId, substreamId, address, size,
                    global ? Payloads.ATC_INVALIDATE_GLOBAL : 0).encode());
            if (status != 0) {
                LOG.warning("session " + session.id() + ": front-end refused ATC invalidation with status " + status);
            }
        } catch (Exception e) {
            session.fail("ATC invalidation not acknowledged: " + e.getMessage());
        }
    }

    @Override
    public void pageResponse(int streamId, int substreamId, int groupIndex, int code) {
        session.publish(BridgeEvent.PAGE_RESPONSE, String.format("sid=%d ssid=%d group=%d code=%d", streamId, substreamId, groupIndex, code));
        BackendChannel b;
        synchronized (this) {
            b = backend;
        }
        if (b == null) {
            return;
        }
        try {
            b.post(BackendRequest.IOMMU_PRI_RESPONSE, new Payloads.PriResponse(streamId, substreamId, groupIndex, code).encode());
        } catch (Exception e) {
            session.fail("PRI response on the back-end channel failed: " + e.getMessage());
        }
    }

    @Override
    public void stallResolved(int streamId, int stag, boolean retry) {
        session.publish(BridgeEvent.STALL_RESOLVED, String.format("sid=%d stag=%d %s", streamId, stag, retry ? "retry" : "abort"));
        BackendChannel b;
        synchronized (this) {
            b = backend;
        }
        if (b == null) {
            return;
        }
        try {
            b.post(BackendRequest.IOMMU_STALL_RESOLVED,
                    new Payloads.StallResolved(streamId, stag, retry ? Payloads.STALL_RETRY : 0).encode());
        } catch (Exception e) {
            session.fail("stall resolution on the back-end channel failed: " + e.getMessage());
        }
    }

    @Override
    public synchronized void close() {
        irqFds.values().forEach(SessionHost::retire);
        irqFds.clear();
        callFds.values().forEach(SessionHost::retire);
        callFds.clear();
        eventqFds.values().forEach(SessionHost::retire);
        eventqFds.clear();
        if (backend != null) {
            backend.close();
            backend = null;
        }
    }
}
