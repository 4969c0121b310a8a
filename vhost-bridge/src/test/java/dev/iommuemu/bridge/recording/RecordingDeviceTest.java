package dev.iommuemu.bridge.recording;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.iommuemu.bridge.device.BridgedDevice;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The recording decorator cannot silently fall back to an interface default. */
class RecordingDeviceTest {
    /**
     * Every method of {@link BridgedDevice} is RecordingDevice's own: a method added to the seam
     * later with a default would otherwise bypass the wrapped model (and the recording).
     */
    @Test
    void everyMethodOfTheSeamIsDelegated() throws Exception {
        List<String> missing = new ArrayList<>();
        for (Method m : BridgedDevice.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            Method own = RecordingDevice.class.getMethod(m.getName(), m.getParameterTypes());
            if (own.getDeclaringClass() != RecordingDevice.class) {
                missing.add(m.getName());
            }
        }
        assertEquals(List.of(), missing);
    }
}
