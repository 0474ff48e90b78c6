using System.Buffers.Binary;

namespace Crid.Streaming.Spdy;

/// <summary>SPDY/3 control frame types (draft 3.1, section 2.6); 5 (NOOP) was removed in version 3.</summary>
internal enum FrameType : ushort
{
    SynStream = 1,
    SynReply = 2,
    RstStream = 3,
    Settings = 4,
    Ping = 6,
    GoAway = 7,
    Headers = 8,
    WindowUpdate = 9,
}

/// <summary>RST_STREAM status codes (section 2.4.2).</summary>
internal enum RstStatus : uint
{
    ProtocolError = 1,
    InvalidStream = 2,
    RefusedStream = 3,
    UnsupportedVersion = 4,
    Cancel = 5,
    InternalError = 6,
    FlowControlError = 7,
    StreamInUse = 8,
    StreamAlreadyClosed = 9,
    FrameTooLarge = 11,
}

/// <summary>GOAWAY status codes (section 2.6.6).</summary>
internal enum GoAwayStatus : uint
{
    Ok = 0,
    ProtocolError = 1,
    InternalError = 2,
}

/// <summary>The fixed parts of SPDY/3 frames: the 8-byte frame header and the constants around it.</summary>
internal static class SpdyFrames
{
    public const ushort Version = 3;
    public const int HeaderLength = 8;

    /// <summary>FLAG_FIN on data frames and on SYN_STREAM, SYN_REPLY and HEADERS.</summary>
    public const byte FlagFin = 0x01;

    /// <summary>SYN_STREAM's FLAG_UNIDIRECTIONAL: the receiver never sends on the stream.</summary>
    public const byte FlagUnidirectional = 0x02;

    /// <summary>The 24-bit length field's limit.</summary>
    public const int MaxLength = 0xFFFFFF;

    /// <summary>SETTINGS_INITIAL_WINDOW_SIZE's id; the other settings are advisory and ignored.</summary>
    public const uint SettingsInitialWindowSize = 7;

    /// <summary>The flow-control window both ends start with, per stream and (3.1) per session.</summary>
    public const int DefaultWindow = 64 * 1024;

    public const int MaxWindow = int.MaxValue;

    public static void WriteControlHeader(Span<byte> into, FrameType type, byte flags, int length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(into, 0x80000000u | ((uint)Version << 16) | (ushort)type);
        BinaryPrimitives.WriteUInt32BigEndian(into[4..], ((uint)flags << 24) | (uint)length);
    }

    public static void WriteDataHeader(Span<byte> into, uint streamId, byte flags, int length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(into, streamId & 0x7FFFFFFF);
        BinaryPrimitives.WriteUInt32BigEndian(into[4..], ((uint)flags << 24) | (uint)length);
    }

    /// <summary>The frame header's fields; data frames carry a stream id where control frames carry a version and type.</summary>
    public readonly record struct Header(bool IsControl, ushort Version, FrameType Type, uint StreamId, byte Flags, int Length)
    {
        public static Header Parse(ReadOnlySpan<byte> bytes)
        {
            uint first = BinaryPrimitives.ReadUInt32BigEndian(bytes);
            uint second = BinaryPrimitives.ReadUInt32BigEndian(bytes[4..]);
            byte flags = (byte)(second >> 24);
            int length = (int)(second & 0xFFFFFF);
            return (first & 0x80000000) != 0
                ? new Header(true, (ushort)((first >> 16) & 0x7FFF), (FrameType)(first & 0xFFFF), 0, flags, length)
                : new Header(false, 0, 0, first & 0x7FFFFFFF, flags, length);
        }
    }
}
