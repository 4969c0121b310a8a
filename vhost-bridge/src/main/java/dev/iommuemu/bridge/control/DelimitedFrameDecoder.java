package dev.iommuemu.bridge.control;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.CorruptedFrameException;
import io.netty.handler.codec.TooLongFrameException;
import java.util.List;

/**
 * Splits a stream into protobuf length-delimited frames (a base-128 varint32 length, then that many
 * bytes: protobuf's {@code writeDelimitedTo}), refusing a length over {@code maxFrame} as soon as
 * the varint is read, before any of the frame is buffered (Netty's own
 * ProtobufVarint32FrameDecoder buffers whatever length a peer announces). It also tells the
 * transport whether a frame is begun but incomplete, for the request timeout.
 */
final class DelimitedFrameDecoder extends ByteToMessageDecoder {
    private final int maxFrame;
    private volatile boolean partial;
    private volatile long lastBytes = System.nanoTime();

    DelimitedFrameDecoder(int maxFrame) {
        this.maxFrame = maxFrame;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        lastBytes = System.nanoTime();
        super.channelRead(ctx, msg);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        while (in.isReadable()) {
            in.markReaderIndex();
            int length = readVarint32(in);
            if (length == -1) {
                in.resetReaderIndex();
                break; // the length itself is incomplete
            }
            if (length < 0 || length > maxFrame) {
                in.skipBytes(in.readableBytes());
                partial = false;
                throw new TooLongFrameException("request of " + Integer.toUnsignedString(length) + " bytes exceeds " + maxFrame);
            }
            if (in.readableBytes() < length) {
                in.resetReaderIndex();
                break;
            }
            out.add(in.readRetainedSlice(length));
        }
        partial = in.isReadable();
    }

    /**
     * A varint32 (protobuf encoding: 7 bits per byte, low first, high bit = more), -1 if the buffer
     * ends inside it; a varint longer than 5 bytes is corrupt.
     */
    private static int readVarint32(ByteBuf in) {
        int result = 0;
        for (int i = 0; i < 5; i++) {
            if (!in.isReadable()) {
                return -1;
            }
            byte b = in.readByte();
            result |= (b & 0x7f) << (7 * i);
            if (b >= 0) {
                return result < 0 ? Integer.MIN_VALUE : result;
            }
        }
        throw new CorruptedFrameException("malformed varint32 length");
    }

    /** Whether bytes of an incomplete request are waiting. */
    boolean hasPartialFrame() {
        return partial;
    }

    /** When bytes last arrived ({@link System#nanoTime}). */
    long lastBytesNanos() {
        return lastBytes;
    }
}
