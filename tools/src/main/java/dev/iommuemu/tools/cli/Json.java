package dev.iommuemu.tools.cli;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;

/**
 * iommu-emu-ctl's --json: protobuf's canonical JSON mapping of the response message, with the
 * field names of control.proto (snake_case), one object per line; 64-bit integers are strings and
 * enums their names, as the mapping specifies. Fields without presence are printed even when zero
 * (a level 0 step says "level": 0); unset optional fields are left out.
 */
final class Json {
    private static final JsonFormat.Printer PRINTER = JsonFormat.printer().preservingProtoFieldNames()
            .alwaysPrintFieldsWithNoPresence().omittingInsignificantWhitespace();

    private Json() {}

    static String print(Message m) {
        try {
            return PRINTER.print(m);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException("a control.proto message has no JSON form", e); // Any fields only
        }
    }
}
