using System.Buffers.Binary;

namespace Converge.Grains.DataChannel;

/// <summary>What a data-channel frame carries (format: docs/data-channel.md).</summary>
public enum DataFrameType : byte
{
    /// <summary>Client to storage node, first on a connection: protocol version and the node name the client means.</summary>
    Hello = 1,

    /// <summary>Storage node's answer to <see cref="Hello"/>: one <see cref="HelloStatus"/> byte.</summary>
    HelloReply = 2,

    /// <summary>Encoded log records laid end to end, all of one segment.</summary>
    Append = 3,

    /// <summary>One <see cref="DataPath.MirrorStatus"/> byte per record of the append with the same request id.</summary>
    AppendReply = 4,

    /// <summary>Storage node to storage node: destage's extent writes for one placement group's replica (<see cref="ApplyFrame"/>).</summary>
    Apply = 5,

    /// <summary>The outcome of the apply with the same request id, once durable or refused (<see cref="ApplyFrame"/>).</summary>
    ApplyReply = 6,
}

public enum HelloStatus : byte
{
    Ok = 0,

    /// <summary>The listener belongs to another node (a stale endpoint, reused by another process).</summary>
    WrongNode = 1,

    UnsupportedVersion = 2,
}

/// <summary>
/// The 16-byte header in front of every data-channel frame, little-endian: body length (u32), type (u8), three zero
/// bytes, request id (u64). A frame whose header is malformed ends the connection: a byte stream out of step cannot be
/// trusted further.
/// </summary>
public readonly record struct DataFrameHeader(int BodyLength, DataFrameType Type, ulong RequestId)
{
    public const int Length = 16;

    /// <summary>Version carried in <see cref="DataFrameType.Hello"/>.</summary>
    /// <remarks>
    /// Version 2 added <see cref="DataFrameType.Apply"/>. A node accepts versions 1 and 2 (a version-1 client sends only
    /// appends), so storage nodes can be upgraded before compute nodes; it refuses any other.
    /// </remarks>
    public const ushort ProtocolVersion = 2;

    /// <summary>The oldest version a node still accepts in a hello.</summary>
    public const ushort OldestProtocolVersion = 1;

    /// <summary>
    /// The largest append body: the writer's batches stop at 1 MiB and its largest single record is 64 KiB plus
    /// overhead, so 4 MiB leaves room and still bounds what one frame can make a node buffer.
    /// </summary>
    public const int MaxAppendBodyBytes = 4 * 1024 * 1024;

    /// <summary>
    /// The largest apply body: destage gathers at most 16 MiB of payload per round plus one record (at most 1 MiB), and
    /// its 4,096 writes take 32 bytes of header each.
    /// </summary>
    public const int MaxApplyBodyBytes = 18 * 1024 * 1024;

    /// <summary>The largest hello body: a version and a node name.</summary>
    public const int MaxHelloBodyBytes = 256;

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteInt32LittleEndian(destination, BodyLength);
        destination[4] = (byte)Type;
        destination[5] = 0;
        destination[6] = 0;
        destination[7] = 0;
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], RequestId);
    }

    /// <summary>Parses a header; null with <paramref name="error"/> set when it is not one this protocol sends.</summary>
    public static DataFrameHeader? TryRead(ReadOnlySpan<byte> source, out string? error)
    {
        var length = BinaryPrimitives.ReadInt32LittleEndian(source);
        var type = (DataFrameType)source[4];
        if (source[5] != 0 || source[6] != 0 || source[7] != 0)
        {
            error = "reserved header bytes are not zero";
            return null;
        }

        var max = type switch
        {
            DataFrameType.Hello or DataFrameType.HelloReply => MaxHelloBodyBytes,
            DataFrameType.Append => MaxAppendBodyBytes,
            DataFrameType.AppendReply => (MaxAppendBodyBytes / Converge.Log.LogRecord.OverheadBytes) + 1,
            DataFrameType.Apply => MaxApplyBodyBytes,
            DataFrameType.ApplyReply => ApplyFrame.ReplyHeaderLengthBytes + ApplyFrame.MaxReplyMessageBytes,
            _ => -1,
        };
        if (max < 0)
        {
            error = $"unknown frame type {(byte)type}";
            return null;
        }

        if (length < 0 || length > max)
        {
            error = $"a {type} frame of {length} bytes (at most {max})";
            return null;
        }

        error = null;
        return new DataFrameHeader(length, type, BinaryPrimitives.ReadUInt64LittleEndian(source[8..]));
    }
}
