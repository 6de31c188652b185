using System.Buffers.Binary;
using System.Diagnostics;
using Converge.Buffers;

namespace Converge.Log;

/// <summary>
/// The record codec. A record is encoded once, by the writer on the compute side, and the same bytes go to both
/// storage mirrors, into their logs, and back out on a read; its CRC-32C is checked on receipt and on every read.
/// </summary>
/// <remarks>
/// Layout (little-endian), frozen by a golden test; see docs/log-format.md:
/// <code>
///  0  magic u32 "CVLR"   4  version u16   6  kind u8   7  flags u8 (0)
///  8  volume id (16, Guid.TryWriteBytes order)
/// 24  epoch u64         32  sequence u64
/// 40  segment id (16)
/// 56  offset bytes u64  64  length bytes u64
/// 72  payload length u32  76  reserved u32 (0)
/// 80  payload (payload length bytes)
/// 80+P  CRC-32C u32 over bytes [0, 80+P)
/// </code>
/// </remarks>
public static class LogRecord
{
    public const uint Magic = 0x524C5643; // "CVLR" read little-endian
    public const ushort FormatVersion = 1;
    public const int HeaderLengthBytes = 80;
    public const int TrailerLengthBytes = 4;
    public const int OverheadBytes = HeaderLengthBytes + TrailerLengthBytes;

    /// <summary>Where the header keeps the payload length (u32): what delimits records laid end to end.</summary>
    public const int PayloadLengthOffset = 72;

    /// <summary>The largest payload the codec accepts; writes larger than this are split by the writer.</summary>
    public const int MaxPayloadBytes = 8 * 1024 * 1024;

    public static int EncodedLength(int payloadLengthBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(payloadLengthBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadLengthBytes, MaxPayloadBytes);
        return OverheadBytes + payloadLengthBytes;
    }

    /// <summary>Encodes into <paramref name="destination"/> and returns the byte count written.</summary>
    /// <exception cref="ArgumentException">The header and payload disagree, or the destination is too small.</exception>
    public static int Encode(in LogRecordHeader header, ReadOnlySpan<byte> payload, Span<byte> destination)
    {
        Validate(header, payload.Length);
        var length = EncodedLength(payload.Length);
        if (destination.Length < length)
        {
            throw new ArgumentException($"destination holds {destination.Length} bytes; the record needs {length}", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], FormatVersion);
        destination[6] = (byte)header.Kind;
        destination[7] = 0;
        WriteGuid(header.VolumeId, destination[8..]);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], header.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[32..], header.Sequence);
        WriteGuid(header.SegmentId, destination[40..]);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[56..], header.OffsetBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[64..], header.LengthBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[PayloadLengthOffset..], (uint)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[76..], 0);
        payload.CopyTo(destination[HeaderLengthBytes..]);
        var covered = HeaderLengthBytes + payload.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[covered..], Crc32C.Compute(destination[..covered]));
        Debug.Assert(TryDecode(destination[..length], out _) == LogRecordDecodeStatus.Ok, "an encoded record must decode");
        return length;
    }

    /// <summary>Encodes into a buffer rented from <see cref="LargeBuffers"/>; the caller owns and disposes the result.</summary>
    public static PooledLogRecord EncodePooled(in LogRecordHeader header, ReadOnlySpan<byte> payload)
    {
        var buffer = LargeBuffers.Rent(EncodedLength(payload.Length));
        try
        {
            var length = Encode(header, payload, buffer);
            return new PooledLogRecord(buffer, length);
        }
        catch
        {
            LargeBuffers.Return(buffer);
            throw;
        }
    }

    /// <summary>
    /// Decodes and verifies a whole record (magic, version, kind, lengths, CRC). Nothing is returned as data
    /// unless the status is <see cref="LogRecordDecodeStatus.Ok"/>.
    /// </summary>
    public static LogRecordDecodeStatus TryDecode(ReadOnlySpan<byte> encoded, out LogRecordHeader header) =>
        TryDecodeChecksummed(encoded, Crc32C.Compute(encoded), out header);

    /// <summary>
    /// <see cref="TryDecode"/> for a caller that already ran the CRC-32C over all of <paramref name="encoded"/>, trailer
    /// included (the log does, checking a frame): the record is intact exactly when that gives
    /// <see cref="Crc32C.Residue"/>, so its bytes are not read a second time.
    /// </summary>
    public static LogRecordDecodeStatus TryDecodeChecksummed(ReadOnlySpan<byte> encoded, uint crcOfEncoded, out LogRecordHeader header)
    {
        var status = TryDecodeHeader(encoded, out header);
        if (status != LogRecordDecodeStatus.Ok)
        {
            return status;
        }

        if (encoded.Length != HeaderLengthBytes + header.PayloadLengthBytes + TrailerLengthBytes)
        {
            header = default;
            return LogRecordDecodeStatus.BadLength;
        }

        // CRC-32C over bytes and their own little-endian CRC-32C gives the residue, and only then.
        if (crcOfEncoded != Crc32C.Residue)
        {
            header = default;
            return LogRecordDecodeStatus.BadChecksum;
        }

        return LogRecordDecodeStatus.Ok;
    }

    /// <summary>
    /// Parses the header alone, without the CRC. Only for diagnostics (naming the segment of a corrupt record):
    /// a header read this way is unverified.
    /// </summary>
    public static LogRecordDecodeStatus TryDecodeHeader(ReadOnlySpan<byte> encoded, out LogRecordHeader header)
    {
        header = default;
        if (encoded.Length < OverheadBytes)
        {
            return LogRecordDecodeStatus.TooShort;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(encoded) != Magic)
        {
            return LogRecordDecodeStatus.BadMagic;
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(encoded[4..]) != FormatVersion)
        {
            return LogRecordDecodeStatus.UnsupportedVersion;
        }

        var kind = (LogRecordKind)encoded[6];
        if (kind is < LogRecordKind.Write or > LogRecordKind.Seal)
        {
            return LogRecordDecodeStatus.BadKind;
        }

        var payloadLength = BinaryPrimitives.ReadUInt32LittleEndian(encoded[PayloadLengthOffset..]);
        if (payloadLength > MaxPayloadBytes || HeaderLengthBytes + (long)payloadLength + TrailerLengthBytes > encoded.Length)
        {
            return LogRecordDecodeStatus.BadLength;
        }

        var parsed = new LogRecordHeader(
            kind,
            new Guid(encoded.Slice(8, 16)),
            BinaryPrimitives.ReadUInt64LittleEndian(encoded[24..]),
            BinaryPrimitives.ReadUInt64LittleEndian(encoded[32..]),
            new Guid(encoded.Slice(40, 16)),
            BinaryPrimitives.ReadUInt64LittleEndian(encoded[56..]),
            BinaryPrimitives.ReadUInt64LittleEndian(encoded[64..]),
            (int)payloadLength);
        if (!IsConsistent(parsed))
        {
            return LogRecordDecodeStatus.BadLength;
        }

        header = parsed;
        return LogRecordDecodeStatus.Ok;
    }

    /// <summary>
    /// Cuts records laid end to end (an append batch) apart by each header's payload length. Bytes that cannot be a
    /// record (too short, or a length running past the end) end the cut and are reported by
    /// <paramref name="malformedTail"/>. Nothing is verified here: each record is, in full, where it is appended.
    /// </summary>
    public static List<ReadOnlyMemory<byte>> SplitJoined(ReadOnlyMemory<byte> encodedRecords, out bool malformedTail)
    {
        var records = new List<ReadOnlyMemory<byte>>();
        var rest = encodedRecords;
        while (rest.Length > 0)
        {
            if (rest.Length < OverheadBytes)
            {
                malformedTail = true;
                return records;
            }

            var payloadLength = BinaryPrimitives.ReadUInt32LittleEndian(rest.Span[PayloadLengthOffset..]);
            if (payloadLength > (uint)(rest.Length - OverheadBytes))
            {
                malformedTail = true;
                return records;
            }

            var length = OverheadBytes + (int)payloadLength;
            records.Add(rest[..length]);
            rest = rest[length..];
        }

        malformedTail = false;
        return records;
    }

    /// <summary>The payload of a record already decoded with <see cref="TryDecode"/>.</summary>
    public static ReadOnlySpan<byte> Payload(ReadOnlySpan<byte> encoded, in LogRecordHeader header) =>
        encoded.Slice(HeaderLengthBytes, header.PayloadLengthBytes);

    private static void Validate(in LogRecordHeader header, int payloadLengthBytes)
    {
        if (header.Kind is < LogRecordKind.Write or > LogRecordKind.Seal)
        {
            throw new ArgumentException($"unknown record kind {(int)header.Kind}", nameof(header));
        }

        if (header.PayloadLengthBytes != payloadLengthBytes)
        {
            throw new ArgumentException($"header says {header.PayloadLengthBytes} payload bytes, payload has {payloadLengthBytes}", nameof(header));
        }

        if (!IsConsistent(header))
        {
            throw new ArgumentException($"a {header.Kind} record cannot have length {header.LengthBytes} and payload {payloadLengthBytes} bytes", nameof(header));
        }
    }

    private static bool IsConsistent(in LogRecordHeader header) => header.Kind switch
    {
        LogRecordKind.Write => header.PayloadLengthBytes > 0 && (ulong)header.PayloadLengthBytes == header.LengthBytes,
        LogRecordKind.Zero => header.PayloadLengthBytes == 0 && header.LengthBytes > 0,
        _ => header.PayloadLengthBytes == 0 && header.LengthBytes == 0,
    };

    private static void WriteGuid(Guid value, Span<byte> destination)
    {
        var written = value.TryWriteBytes(destination);
        Debug.Assert(written, "a Guid needs 16 bytes");
    }
}

/// <summary>An encoded record in a buffer rented from <see cref="LargeBuffers"/>. The holder owns it and must dispose it once.</summary>
public readonly struct PooledLogRecord(byte[] buffer, int lengthBytes) : IDisposable
{
    public int LengthBytes { get; } = lengthBytes;

    public ReadOnlyMemory<byte> Memory => buffer.AsMemory(0, LengthBytes);

    public ReadOnlySpan<byte> Span => buffer.AsSpan(0, LengthBytes);

    public void Dispose() => LargeBuffers.Return(buffer);
}
