package dev.iommuemu.bridge.session;

import com.sun.jna.LastErrorException;
import com.sun.jna.Memory;
import dev.iommuemu.bridge.unix.LibC;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;
import java.util.logging.Logger;

/**
 * Waits on the virtqueue kick eventfds of one connection (vhost-user SET_VRING_KICK) and calls back
 * with the queue index when one fires. One thread; poll(2) over the kick fds and a wake-up eventfd
 * that is signalled whenever the set changes or the poller stops. Kick fds are eventfds only
 * (checked at SET_VRING_KICK), non-blocking; the poll set is kept between passes, so a pass
 * allocates nothing.
 */
final class KickPoller implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(KickPoller.class.getName());
    private final Map<Integer, Integer> kicks = new LinkedHashMap<>();
    /** Kick fds replaced or removed, closed by the poller thread between two polls. */
    private final List<Integer> retired = new ArrayList<>();
    private final EventFd eventFd = new EventFd();
    private final IntConsumer onKick;
    private final int wakeFd;
    private final Thread thread;
    private volatile boolean running = true;

    KickPoller(String name, IntConsumer onKick) {
        this.onKick = onKick;
        this.wakeFd = LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
        this.thread = new Thread(this::run, name);
        thread.setDaemon(true);
        thread.start();
    }

    /**
     * Watches {@code fd} for queue {@code index} (the poller owns it). An older one is closed by the
     * poller thread before its next poll(2), never while a poll or its results may still use that
     * number: closed at once, the number can be given to the next descriptor the VMM sends (the new
     * kick fd of a restarted ring), and the poller would take that one for the old, stale fd.
     */
    synchronized void set(int index, int fd) {
        Integer old = fd >= 0 ? kicks.put(index, fd) : kicks.remove(index);
        if (old != null) {
            retired.add(old);
        }
        changed = true;
        eventFd.signal(wakeFd);
    }

    /** The poll set, rebuilt only when {@link #set} changed it: a pass allocates nothing. */
    private int[] fds = new int[1];
    private int[] queues = new int[1];
    private Memory pfd = new Memory(8);
    private boolean changed = true;

    private void rebuild() {
        retired.forEach(LibC::closeQuietly);
        retired.clear();
        int n = kicks.size() + 1;
        if (fds.length != n) {
            fds = new int[n];
            queues = new int[n];
            pfd = new Memory(8L * n);
        }
        fds[0] = wakeFd;
        int i = 1;
        for (Map.Entry<Integer, Integer> e : kicks.entrySet()) {
            queues[i] = e.getKey();
            fds[i++] = e.getValue();
        }
        for (int k = 0; k < n; k++) {
            pfd.setInt(8L * k, fds[k]);
            pfd.setShort(8L * k + 4, LibC.POLLIN);
        }
        changed = false;
    }

    private void run() {
        while (running) {
            synchronized (this) {
                if (changed) {
                    rebuild();
                }
            }
            int n = fds.length;
            for (int k = 0; k < n; k++) {
                pfd.setShort(8L * k + 6, (short) 0);
            }
            try {
                LibC.poll(pfd, n, -1);
            } catch (LastErrorException e) {
                if (e.getErrorCode() != LibC.EINTR) {
                    LOG.warning("poll on kick fds: errno " + e.getErrorCode());
                    return;
                }
                continue;
            }
            if (pfd.getShort(6) != 0) {
                eventFd.drain(wakeFd);
            }
            for (int i = 1; i < n && running; i++) {
                short rev = pfd.getShort(8L * i + 6);
                if ((rev & LibC.POLLIN) != 0) {
                    if (eventFd.drain(fds[i]) > 0) {
                        onKick.accept(queues[i]);
                    }
                } else if (rev != 0) {
                    LOG.warning("kick fd of queue " + queues[i] + " reports poll events 0x" + Integer.toHexString(rev) + "; no longer watched");
                    synchronized (this) {
                        Integer cur = kicks.get(queues[i]);
                        if (cur != null && cur == fds[i]) {
                            kicks.remove(queues[i]);
                            retired.add(fds[i]);
                            changed = true;
                        }
                    }
                }
            }
        }
    }

    @Override
    public void close() {
        running = false;
        eventFd.signal(wakeFd);
        try {
            thread.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (this) {
            kicks.values().forEach(LibC::closeQuietly);
            kicks.clear();
            retired.forEach(LibC::closeQuietly);
            retired.clear();
        }
        LibC.closeQuietly(wakeFd);
    }
}
