using System.Buffers.Binary;
using System.Text;
using Converge.Storage;

namespace Converge.Grains.DataChannel;

/// <summary>An apply as a storage node receives it: the extent writes of one placement group, payloads pointing into the frame body.</summary>
public sealed record ApplyRequest(Guid VolumeId, int Group, int BlockSizeBytes, ExtentWrite[] Writes);

/// <summary>
/// Bodies of <see cref="DataFrameType.Apply"/> and <see cref="DataFrameType.ApplyReply"/> frames, little-endian
/// (docs/data-channel.md):
/// <code>
/// apply:  volume id (16, RFC 4122 byte order)  group u32  block size u32  write count u32  zero u32
///         then per write: kind u8, three zero bytes, block count u32, block index u64, LSN epoch u32,
///         zero u32, LSN sequence u64, then block count x block size payload bytes for a data write
/// reply:  status u8, three zero bytes, blocks applied u32, blocks skipped u32, message (UTF-8, the rest)
/// </code>
/// </summary>
public static class ApplyFrame
{
    public const int HeaderLengthBytes = 32;
    public const int WriteHeaderLengthBytes = 32;
    public const int ReplyHeaderLengthBytes = 12;

    /// <summary>The most writes one body may carry (the extent store's own limit per apply; destage sends at most 4,096).</summary>
    public const int MaxWrites = 16384;

    /// <summary>The longest message a reply carries; longer ones are cut.</summary>
    public const int MaxReplyMessageBytes = 1024;

    /// <summary>Bytes of the body that carries <paramref name="writes"/>.</summary>
    public static int EncodedLength(IReadOnlyList<ExtentWrite> writes)
    {
        if (writes.Count > MaxWrites)
        {
            throw new ArgumentOutOfRangeException(nameof(writes), writes.Count, $"an apply frame carries at most {MaxWrites} writes");
        }

        long length = HeaderLengthBytes;
        for (var i = 0; i < writes.Count; i++)
        {
            length += WriteHeaderLengthBytes + writes[i].Payload.Length;
        }

        return length <= DataFrameHeader.MaxApplyBodyBytes
            ? (int)length
            : throw new ArgumentOutOfRangeException(nameof(writes), length, $"an apply frame holds at most {DataFrameHeader.MaxApplyBodyBytes} bytes");
    }

    /// <summary>Writes the body into <paramref name="destination"/>, which holds at least <see cref="EncodedLength"/> bytes; returns its length.</summary>
    public static int Encode(Span<byte> destination, Guid volumeId, int group, int blockSizeBytes, IReadOnlyList<ExtentWrite> writes)
    {
        var length = EncodedLength(writes);
        if (destination.Length < length)
        {
            throw new ArgumentException($"the body needs {length} bytes, the buffer has {destination.Length}", nameof(destination));
        }

        if (!volumeId.TryWriteBytes(destination, bigEndian: true, out _))
        {
            throw new InvalidOperationException("a GUID takes 16 bytes");
        }

        BinaryPrimitives.WriteInt32LittleEndian(destination[16..], group);
        BinaryPrimitives.WriteInt32LittleEndian(destination[20..], blockSizeBytes);
        BinaryPrimitives.WriteInt32LittleEndian(destination[24..], writes.Count);
        BinaryPrimitives.WriteInt32LittleEndian(destination[28..], 0);
        var at = HeaderLengthBytes;
        for (var i = 0; i < writes.Count; i++)
        {
            var write = writes[i];
            var header = destination.Slice(at, WriteHeaderLengthBytes);
            header[..4].Clear();
            header[0] = (byte)write.Kind;
            BinaryPrimitives.WriteInt32LittleEndian(header[4..], write.BlockCount);
            BinaryPrimitives.WriteInt64LittleEndian(header[8..], write.BlockIndex);
            BinaryPrimitives.WriteUInt32LittleEndian(header[16..], write.Lsn.Epoch);
            BinaryPrimitives.WriteUInt32LittleEndian(header[20..], 0);
            BinaryPrimitives.WriteUInt64LittleEndian(header[24..], write.Lsn.Sequence);
            at += WriteHeaderLengthBytes;
            write.Payload.Span.CopyTo(destination[at..]);
            at += write.Payload.Length;
        }

        return at;
    }

    /// <summary>
    /// Parses a body; null with <paramref name="error"/> set when it is not one this protocol sends. Checks the layout
    /// only (sizes, kinds, zero bytes); the store checks the writes against the extent layout and the volume.
    /// </summary>
    public static ApplyRequest? TryDecode(ReadOnlyMemory<byte> body, out string? error)
    {
        var span = body.Span;
        if (span.Length < HeaderLengthBytes)
        {
            error = $"an apply body of {span.Length} bytes is shorter than its {HeaderLengthBytes}-byte header";
            return null;
        }

        var volumeId = new Guid(span[..16], bigEndian: true);
        var group = BinaryPrimitives.ReadInt32LittleEndian(span[16..]);
        var blockSize = BinaryPrimitives.ReadInt32LittleEndian(span[20..]);
        var count = BinaryPrimitives.ReadInt32LittleEndian(span[24..]);
        if (BinaryPrimitives.ReadInt32LittleEndian(span[28..]) != 0)
        {
            error = "reserved apply header bytes are not zero";
            return null;
        }

        if (group < 0 || blockSize <= 0 || count < 0 || count > MaxWrites || count > (span.Length - HeaderLengthBytes) / WriteHeaderLengthBytes)
        {
            error = $"group {group}, block size {blockSize} and {count} writes (at most {MaxWrites}) do not describe a {span.Length}-byte body";
            return null;
        }

        var writes = new ExtentWrite[count];
        var at = HeaderLengthBytes;
        for (var i = 0; i < count; i++)
        {
            if (span.Length - at < WriteHeaderLengthBytes)
            {
                error = $"the body ends inside write {i}";
                return null;
            }

            var header = span.Slice(at, WriteHeaderLengthBytes);
            var kind = (ExtentWriteKind)header[0];
            var blockCount = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
            var blockIndex = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
            if (header[1] != 0 || header[2] != 0 || header[3] != 0 || BinaryPrimitives.ReadUInt32LittleEndian(header[20..]) != 0)
            {
                error = $"reserved bytes of write {i} are not zero";
                return null;
            }

            long payloadLength = kind switch
            {
                ExtentWriteKind.Data => (long)blockCount * blockSize,
                ExtentWriteKind.Zero => 0,
                _ => -1,
            };
            if (payloadLength < 0 || blockCount <= 0 || blockIndex < 0 || payloadLength > span.Length - at - WriteHeaderLengthBytes)
            {
                error = $"write {i} ({kind}, {blockCount} blocks at {blockIndex}) does not fit the body";
                return null;
            }

            var lsn = new Lsn(BinaryPrimitives.ReadUInt32LittleEndian(header[16..]), BinaryPrimitives.ReadUInt64LittleEndian(header[24..]));
            at += WriteHeaderLengthBytes;
            writes[i] = new ExtentWrite(volumeId, blockIndex, blockCount, lsn, kind, body.Slice(at, (int)payloadLength));
            at += (int)payloadLength;
        }

        if (at != span.Length)
        {
            error = $"{span.Length - at} bytes follow the last write";
            return null;
        }

        error = null;
        return new ApplyRequest(volumeId, group, blockSize, writes);
    }

    public static byte[] EncodeReply(ExtentApplyReply reply)
    {
        var message = Encoding.UTF8.GetBytes(reply.Message ?? "");
        var messageLength = Math.Min(message.Length, MaxReplyMessageBytes);
        var body = new byte[ReplyHeaderLengthBytes + messageLength];
        body[0] = (byte)reply.Status;
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(4), reply.BlocksApplied);
        BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(8), reply.BlocksSkipped);
        message.AsSpan(0, messageLength).CopyTo(body.AsSpan(ReplyHeaderLengthBytes));
        return body;
    }

    /// <summary>Parses a reply body; null when it is too short or names an unknown status.</summary>
    public static ExtentApplyReply? TryDecodeReply(ReadOnlySpan<byte> body)
    {
        if (body.Length < ReplyHeaderLengthBytes || body[0] > (byte)ExtentStatus.Faulted || body[1] != 0 || body[2] != 0 || body[3] != 0)
        {
            return null;
        }

        return new ExtentApplyReply(
            (ExtentStatus)body[0],
            BinaryPrimitives.ReadInt32LittleEndian(body[4..]),
            BinaryPrimitives.ReadInt32LittleEndian(body[8..]),
            Encoding.UTF8.GetString(body[ReplyHeaderLengthBytes..]));
    }
}
