using System.Buffers.Binary;
using Converge.Log;

namespace Converge.Grains.Log;

/// <summary>
/// The frame that wraps each record in a chunk file. Frozen by a golden test; see docs/log-format.md.
/// <code>
///  0  magic u32 "CVLF"          4  record length u32
///  8  frame sequence u64        16 committed-through u64 (last frame sequence durable when this frame was written)
/// 24  previous frame CRC u32    28 frame CRC u32 = CRC-32C over bytes [0, 28) ++ record
/// 32  record bytes (as received, with their own CRC), then zero padding to a multiple of 8
/// </code>
/// </summary>
internal static class LogFrame
{
    public const uint Magic = 0x464C5643; // "CVLF" read little-endian
    public const int HeaderLengthBytes = 32;
    public const int AlignmentBytes = 8;

    public static int FrameLength(int recordLengthBytes) =>
        (HeaderLengthBytes + recordLengthBytes + AlignmentBytes - 1) & ~(AlignmentBytes - 1);

    /// <summary>Writes header, record and padding into <paramref name="destination"/>; returns the frame CRC.</summary>
    /// <param name="recordCrc">
    /// The CRC-32C of <paramref name="record"/>'s bytes, all of them: <see cref="Crc32C.Residue"/> for a record already
    /// verified (the log verifies every record it admits), so the frame CRC follows from it without reading the record again.
    /// </param>
    public static uint Write(Span<byte> destination, ReadOnlySpan<byte> record, uint recordCrc, ulong frameSequence, ulong committedThrough, uint previousCrc)
    {
        var frameLength = FrameLength(record.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], (uint)record.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], frameSequence);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], committedThrough);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[24..], previousCrc);
        record.CopyTo(destination[HeaderLengthBytes..]);
        destination[(HeaderLengthBytes + record.Length)..frameLength].Clear();
        var crc = Crc32C.Combine(Crc32C.Compute(destination[..28]), recordCrc, record.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[28..], crc);
        return crc;
    }

    /// <summary>
    /// Checks a frame on its own (magic, length, CRC), without the chain to its predecessor. A frame that passes
    /// was written whole by this log's writer. The record's own CRC-32C comes with it (<see cref="FrameInfo.RecordCrc"/>),
    /// so the record can be verified without a second pass (<see cref="LogRecord.TryDecodeChecksummed"/>).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> chunk, int offsetBytes, int maxRecordBytes, out FrameInfo frame)
    {
        frame = default;
        if (offsetBytes + HeaderLengthBytes > chunk.Length)
        {
            return false;
        }

        var header = chunk[offsetBytes..];
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic)
        {
            return false;
        }

        var recordLength = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        if (recordLength == 0 || recordLength > maxRecordBytes || offsetBytes + (long)FrameLength((int)recordLength) > chunk.Length)
        {
            return false;
        }

        var record = header.Slice(HeaderLengthBytes, (int)recordLength);
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(header[28..]);
        var recordCrc = Crc32C.Compute(record);
        if (Crc32C.Combine(Crc32C.Compute(header[..28]), recordCrc, record.Length) != crc)
        {
            return false;
        }

        frame = new FrameInfo(
            offsetBytes,
            (int)recordLength,
            BinaryPrimitives.ReadUInt64LittleEndian(header[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(header[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(header[24..]),
            crc,
            recordCrc);
        return true;
    }

    public static bool IsZeroHeader(ReadOnlySpan<byte> chunk, int offsetBytes) =>
        offsetBytes + HeaderLengthBytes > chunk.Length || !chunk.Slice(offsetBytes, HeaderLengthBytes).ContainsAnyExcept((byte)0);
}

/// <summary>A verified frame; <paramref name="RecordCrc"/> is the CRC-32C of its record's bytes (<see cref="Crc32C.Residue"/> when the record is intact).</summary>
internal readonly record struct FrameInfo(int OffsetBytes, int RecordLengthBytes, ulong Sequence, ulong CommittedThrough, uint PreviousCrc, uint Crc, uint RecordCrc)
{
    public int FrameLengthBytes => LogFrame.FrameLength(RecordLengthBytes);

    public int RecordOffsetBytes => OffsetBytes + LogFrame.HeaderLengthBytes;
}
