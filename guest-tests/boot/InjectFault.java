// The negative case of guest-tests/boot/run.sh: an endpoint's DMA to an IOVA the guest never mapped,
// issued through the control API's Inject (control.proto InjectRequest.fault) on the VMM's session,
// so the model records the fault its configuration calls for (SMMUv3: F_TRANSLATION, IHI 0070
// §7.3.4, in the guest's event queue, with the EVTQ interrupt; virtio-iommu: a fault event,
// virtio 1.x §5.13.6.8). Prints the control API's answer.
//   java -cp vhost-bridge/target/iommu-emu.jar guest-tests/boot/InjectFault.java CONTROL_SOCKET SID IOVA
import dev.iommuemu.bridge.client.ControlClient;
import dev.iommuemu.proto.v1.Access;
import dev.iommuemu.proto.v1.ControlRequest;
import dev.iommuemu.proto.v1.ControlResponse;
import dev.iommuemu.proto.v1.InjectRequest;
import dev.iommuemu.proto.v1.TranslateRequest;
import java.nio.file.Path;

public class InjectFault {
    public static void main(String[] args) throws Exception {
        int sid = Integer.decode(args[1]);
        long iova = Long.decode(args[2]);
        try (ControlClient c = ControlClient.connect(Path.of(args[0]))) {
            ControlResponse r = c.call(ControlRequest.newBuilder().setInject(InjectRequest.newBuilder()
                    .setFault(TranslateRequest.newBuilder().setStreamId(sid).setIova(iova)
                            .setAccess(Access.newBuilder().setWrite(true)))));
            System.out.println(r.toString().replace('\n', ' '));
        }
    }
}
