package dev.iommuemu.bridge.state;

import dev.iommuemu.dma.DmaAccess;
import dev.iommuemu.dma.IommuModel;
import dev.iommuemu.proto.devstate.v1.DeviceState;
import dev.iommuemu.proto.devstate.v1.Smmuv3EventRecord;
import dev.iommuemu.proto.devstate.v1.Smmuv3IdRegisters;
import dev.iommuemu.proto.devstate.v1.Smmuv3IrqConfig;
import dev.iommuemu.proto.devstate.v1.Smmuv3Queue;
import dev.iommuemu.proto.devstate.v1.Smmuv3Stall;
import dev.iommuemu.smmuv3.evtq.EventRecord;
import dev.iommuemu.smmuv3.evtq.EventType;
import dev.iommuemu.smmuv3.state.Smmuv3State;
import java.util.ArrayList;
import java.util.List;

/**
 * {@link Smmuv3State} to and from its protobuf form (device_state.proto Smmuv3State; field by
 * field, docs/device-state.md). Decoding checks only what the wire form cannot express in the
 * model's types (a missing message, an unknown event number); whether the state is possible is the
 * model's check ({@link dev.iommuemu.smmuv3.state.StateCheck}).
 */
public final class Smmuv3StateCodec {
    /** The model name in the envelope (Smmuv3Bridge.Factory.NAME). */
    public static final String MODEL = "smmuv3";

    private Smmuv3StateCodec() {}

    /** The whole envelope for {@code s}, its profile name from the state. */
    public static DeviceState envelope(Smmuv3State s) {
        return DeviceStateCodec.envelope(MODEL, s.profile().name()).setSmmuv3(toProto(s)).build();
    }

    public static dev.iommuemu.proto.devstate.v1.Smmuv3State toProto(Smmuv3State s) {
        Smmuv3State.ProfileId id = s.profile();
        Smmuv3State.Controls c = s.controls();
        dev.iommuemu.proto.devstate.v1.Smmuv3State.Builder b = dev.iommuemu.proto.devstate.v1.Smmuv3State.newBuilder()
                .setId(Smmuv3IdRegisters.newBuilder().setIdr0(id.idr0()).setIdr1(id.idr1()).setIdr2(id.idr2())
                        .setIdr3(id.idr3()).setIdr4(id.idr4()).setIdr5(id.idr5()).setIidr(id.iidr()).setAidr(id.aidr()))
                .setCr0((int) c.cr0()).setCr0Ack((int) c.cr0ack()).setCr1((int) c.cr1()).setCr2((int) c.cr2())
                .setGbpa((int) c.gbpa()).setIrqCtrl((int) c.irqCtrl()).setIrqCtrlack((int) c.irqCtrlAck())
                .setGerror((int) s.errors().gerror()).setGerrorn((int) s.errors().gerrorn())
                .setGerrorIrq(irq(s.gerrorIrq())).setEventqIrq(irq(s.eventqIrq())).setPriqIrq(irq(s.priqIrq()))
                .setStrtabBase(s.streamTable().base()).setStrtabBaseCfg((int) s.streamTable().cfg())
                .setCmdq(queue(s.cmdq())).setEventq(queue(s.eventq())).setPriq(queue(s.priq()))
                .setStagCursor(s.stagCursor()).setServiceFailure(s.serviceFailure());
        for (Smmuv3State.HeldStall h : s.stalls()) {
            boolean ssv = h.substreamId() != IommuModel.NO_SUBSTREAM;
            b.addStalls(Smmuv3Stall.newBuilder().setStreamId(h.streamId()).setSsv(ssv)
                    .setSubstreamId(ssv ? h.substreamId() : 0).setStag(h.stag()).setInputAddress(h.iova())
                    .setWrite(h.access().write()).setInstruction(h.access().instruction())
                    .setPrivileged(h.access().privileged()));
        }
        for (EventRecord e : s.pendingStallRecords()) {
            b.addPendingStallRecords(Smmuv3EventRecord.newBuilder().setEventNumber(e.type().code)
                    .setStreamId(e.streamId()).setSsv(e.ssv()).setSubstreamId(e.substreamId()).setStag(e.stag())
                    .setStall(e.stall()).setRnw(e.rnw()).setInd(e.ind()).setPnu(e.pnu()).setS2(e.s2())
                    .setFaultClass(e.faultClass()).setInputAddr(e.inputAddr()).setIpa(e.ipa()).setReason(e.reason()));
        }
        return b.build();
    }

    private static Smmuv3IrqConfig irq(Smmuv3State.IrqConfig c) {
        return Smmuv3IrqConfig.newBuilder().setCfg0(c.cfg0()).setCfg1((int) c.cfg1()).setCfg2((int) c.cfg2()).build();
    }

    private static Smmuv3Queue queue(Smmuv3State.QueueRegs q) {
        return Smmuv3Queue.newBuilder().setBase(q.base()).setProd((int) q.prod()).setCons((int) q.cons()).build();
    }

    /**
     * The SMMUv3 state in an envelope {@link DeviceStateCodec#decode} accepted.
     *
     * @throws DeviceStateException when the envelope holds no SMMUv3 state or a part of it is missing
     */
    public static Smmuv3State fromProto(DeviceState d) {
        if (!d.hasSmmuv3()) {
            throw new DeviceStateException("the device state for model 'smmuv3' holds no SMMUv3 state");
        }
        dev.iommuemu.proto.devstate.v1.Smmuv3State p = d.getSmmuv3();
        String missing = !p.hasId() ? "id" : !p.hasGerrorIrq() ? "gerror_irq" : !p.hasEventqIrq() ? "eventq_irq"
                : !p.hasPriqIrq() ? "priq_irq" : !p.hasCmdq() ? "cmdq" : !p.hasEventq() ? "eventq" : !p.hasPriq() ? "priq"
                : null;
        if (missing != null) {
            throw new DeviceStateException("the SMMUv3 device state has no " + missing + "; it is incomplete");
        }
        Smmuv3IdRegisters id = p.getId();
        List<Smmuv3State.HeldStall> stalls = new ArrayList<>();
        for (Smmuv3Stall h : p.getStallsList()) {
            substream(h.getSsv(), h.getSubstreamId());
            stalls.add(new Smmuv3State.HeldStall(h.getStreamId(), h.getSsv() ? h.getSubstreamId() : IommuModel.NO_SUBSTREAM,
                    h.getStag(), h.getInputAddress(), new DmaAccess(h.getWrite(), h.getInstruction(), h.getPrivileged())));
        }
        List<EventRecord> records = new ArrayList<>();
        for (Smmuv3EventRecord e : p.getPendingStallRecordsList()) {
            substream(e.getSsv(), e.getSubstreamId());
            EventType t = EventType.of(e.getEventNumber());
            if (t == null) {
                throw new DeviceStateException(String.format("a stall record in the SMMUv3 device state has event number"
                        + " 0x%x, which is no SMMUv3 event (IHI 0070 §7.3)", e.getEventNumber()));
            }
            records.add(new EventRecord(t, e.getStreamId(), e.getSsv(), e.getSubstreamId(), e.getStag(), e.getStall(),
                    e.getRnw(), e.getInd(), e.getPnu(), e.getS2(), e.getFaultClass(), e.getInputAddr(), e.getIpa(),
                    e.getReason()));
        }
        return new Smmuv3State(
                new Smmuv3State.ProfileId(d.getProfile(), id.getIdr0(), id.getIdr1(), id.getIdr2(), id.getIdr3(),
                        id.getIdr4(), id.getIdr5(), id.getIidr(), id.getAidr()),
                new Smmuv3State.Controls(Integer.toUnsignedLong(p.getCr0()), Integer.toUnsignedLong(p.getCr0Ack()), Integer.toUnsignedLong(p.getCr1()), Integer.toUnsignedLong(p.getCr2()),
                        Integer.toUnsignedLong(p.getGbpa()), Integer.toUnsignedLong(p.getIrqCtrl()), Integer.toUnsignedLong(p.getIrqCtrlack())),
                new Smmuv3State.GlobalErrors(Integer.toUnsignedLong(p.getGerror()), Integer.toUnsignedLong(p.getGerrorn())),
                irq(p.getGerrorIrq()), irq(p.getEventqIrq()), irq(p.getPriqIrq()),
                new Smmuv3State.StreamTableBase(p.getStrtabBase(), Integer.toUnsignedLong(p.getStrtabBaseCfg())),
                queue(p.getCmdq()), queue(p.getEventq()), queue(p.getPriq()),
                stalls, p.getStagCursor(), records, p.getServiceFailure());
    }

    /** A SubstreamID needs at most 20 bits (IHI 0070 §6.3 SMMU_IDR1.SSIDSIZE); wider ones cannot be held. */
    private static void substream(boolean ssv, int ssid) {
        if (ssv && (ssid >>> 20) != 0) {
            throw new DeviceStateException(String.format("the SMMUv3 device state has SubstreamID 0x%x, beyond the"
                    + " 20 bits any SMMUv3 has (IHI 0070 §6.3 SMMU_IDR1.SSIDSIZE)", Integer.toUnsignedLong(ssid)));
        }
    }

    private static Smmuv3State.IrqConfig irq(Smmuv3IrqConfig c) {
        return new Smmuv3State.IrqConfig(c.getCfg0(), Integer.toUnsignedLong(c.getCfg1()), Integer.toUnsignedLong(c.getCfg2()));
    }

    private static Smmuv3State.QueueRegs queue(Smmuv3Queue q) {
        return new Smmuv3State.QueueRegs(q.getBase(), Integer.toUnsignedLong(q.getProd()), Integer.toUnsignedLong(q.getCons()));
    }
}
