package dev.iommuemu.dma;

/**
 * The shell side of a device model: what a model asks of the world outside guest memory. The
 * daemon connects these to eventfds, MSI writes and back-end messages to the VMM; tests record
 * them. Calls are synchronous: when {@link #invalidate} returns, the VMM has dropped the
 * translations, so the model may complete the guest's invalidation (CMD_SYNC, virtio UNMAP).
 */
public interface DmaHost {
    /** A wired interrupt line fires (edge). Lines are model-specific names, e.g. "evtq", "gerror". */
    void raiseIrq(String line);

    /** A message-signalled interrupt: a 32-bit write of {@code data} to {@code address}. */
    void msi(long address, int data);

    /**
     * {@link #msi(long, int)} from a named interrupt {@code source}: a host that can learn that the
     * write aborted tells the model which source's MSI it was (SMMUv3
     * {@code Smmuv3.msiAborted}). By default the source is dropped.
     */
    default void msi(long address, int data, MsiSource source) {
        msi(address, data);
    }

    /** The VMM must drop cached translations; returns once it has. */
    void invalidate(IotlbInvalidation inv);

    /**
     * A translation {@code endpoint} may use from now on, offered before any access asks for it
     * (virtio-iommu MAP: the mapping exists once the request completes): a host with a VMM cache it
     * fills itself may put it there; it lasts until an {@link #invalidate} covers it. By default
     * dropped (a hint: the translation is still answered on a miss).
     */
    default void prefill(int endpoint, IotlbEntry entry) {}

    /**
     * The model's state is about to become visible to the guest (virtio: used buffers about to be
     * published, virtio 1.x §2.7.8; docs/device-state-virtio.md "Restart"): a host that journals
     * the state for a restart saves it now, from this thread, through the model's own save (its
     * lock is held and re-entrant), and the state it gets already counts what is about to be
     * published. The publication follows when this returns, so it must not throw: whatever comes
     * after it would not happen, as if the process had died here. By default nothing is saved.
     */
    default void checkpoint() {}

    /**
     * The configuration translations used may have changed (IHI 0070 §4.3 CMD_CFGI_*, a register
     * write, a reset): anything the host derived from it, such as a VMM's walk recipes
     * (docs/protocol.md §4.8), is stale and must go before the change completes. By default nothing.
     */
    default void configurationChanged() {}

    /**
     * {@code h} with its interrupt lines offered to {@code tap} first: a line the tap takes
     * (returns true for) goes no further; MSIs and invalidations go to {@code h} unchanged.
     */
    static DmaHost tapIrqs(DmaHost h, java.util.function.Predicate<String> tap) {
        return new DmaHost() {
            @Override
            public void raiseIrq(String line) {
                if (!tap.test(line)) {
                    h.raiseIrq(line);
                }
            }

            @Override
            public void msi(long address, int data) {
                h.msi(address, data);
            }

            @Override
            public void msi(long address, int data, MsiSource source) {
                h.msi(address, data, source);
            }

            @Override
            public void invalidate(IotlbInvalidation inv) {
                h.invalidate(inv);
            }

            @Override
            public void prefill(int endpoint, IotlbEntry entry) {
                h.prefill(endpoint, entry);
            }

            @Override
            public void checkpoint() {
                h.checkpoint();
            }

            @Override
            public void configurationChanged() {
                h.configurationChanged();
            }
        };
    }

    /** A host that records nothing (for tests that do not look). */
    DmaHost NONE = new DmaHost() {
        @Override
        public void raiseIrq(String line) {}

        @Override
        public void msi(long address, int data) {}

        @Override
        public void invalidate(IotlbInvalidation inv) {}
    };
}
