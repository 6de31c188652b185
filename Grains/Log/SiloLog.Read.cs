using Converge.Buffers;
using Converge.Log;

namespace Converge.Grains.Log;

public sealed partial class SiloLog
{
    /// <summary>
    /// Reads the committed record at <paramref name="address"/> into <paramref name="destination"/> (at least the entry's
    /// <see cref="LogIndexEntry.RecordLengthBytes"/>) and returns its length. Both the frame CRC and the record CRC are
    /// checked; a mismatch throws <see cref="LogCorruptionException"/> and no data is returned.
    /// </summary>
    /// <exception cref="ArgumentException">No chunk holds that address any more (destaged and recycled), or it is not a frame.</exception>
    public int ReadRecord(LogAddress address, Span<byte> destination) => ReadRecord(address, destination, out _);

    /// <summary>
    /// <see cref="ReadRecord(LogAddress, Span{byte})"/>, also giving the record's decoded header: the caller need not
    /// decode (and checksum) the record again.
    /// </summary>
    public int ReadRecord(LogAddress address, Span<byte> destination, out LogRecordHeader recordHeader)
    {
        Chunk chunk;
        lock (_lock)
        {
            if (!_chunks.TryGetValue(address.ChunkNumber, out var found) || found.Retired)
            {
                throw new ArgumentException($"no live chunk holds log address {address}", nameof(address));
            }

            chunk = found;
            chunk.Readers++;
        }

        byte[]? buffer = null;
        try
        {
            if (address.OffsetBytes < 0 || address.OffsetBytes + LogFrame.HeaderLengthBytes > _options.ChunkSizeBytes)
            {
                throw new ArgumentException($"log address {address} is outside a chunk", nameof(address));
            }

            Span<byte> header = stackalloc byte[LogFrame.HeaderLengthBytes];
            var read = chunk.File.Read(address.OffsetBytes, header);
            var recordLength = read == LogFrame.HeaderLengthBytes ? System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(header[4..]) : 0;
            if (recordLength <= 0 || recordLength > _options.MaxRecordBytes || address.OffsetBytes + (long)LogFrame.FrameLength(recordLength) > _options.ChunkSizeBytes)
            {
                throw new LogCorruptionException($"the frame at {address} has a bad header (record length {recordLength})");
            }

            var frameLength = LogFrame.FrameLength(recordLength);
            buffer = LargeBuffers.Rent(frameLength);
            var frame = buffer.AsSpan(0, frameLength);
            if (chunk.File.Read(address.OffsetBytes, frame) != frameLength || !LogFrame.TryParse(frame, 0, _options.MaxRecordBytes, out var parsed))
            {
                throw new LogCorruptionException($"the frame at {address} fails its CRC-32C");
            }

            var record = frame.Slice(LogFrame.HeaderLengthBytes, recordLength);
            var status = LogRecord.TryDecodeChecksummed(record, parsed.RecordCrc, out recordHeader);
            if (status != LogRecordDecodeStatus.Ok)
            {
                throw new LogCorruptionException($"the record at {address} fails verification: {status}");
            }

            if (destination.Length < recordLength)
            {
                throw new ArgumentException($"destination holds {destination.Length} bytes; the record has {recordLength}", nameof(destination));
            }

            record.CopyTo(destination);
            return recordLength;
        }
        finally
        {
            if (buffer is not null)
            {
                LargeBuffers.Return(buffer);
            }

            lock (_lock)
            {
                chunk.Readers--;
            }
        }
    }

    /// <summary>
    /// A snapshot of a segment and its committed records in log order, or null when unknown. It counts as sealed once a
    /// seal is committed, not when one is admitted: records admitted just before the seal may still be in the writer's
    /// batch, and a destage that read the segment then would miss them and mark them destaged unapplied.
    /// </summary>
    public SegmentInfo? GetSegment(Guid segmentId)
    {
        lock (_lock)
        {
            return _segments.TryGetValue(segmentId, out var s)
                ? new SegmentInfo(s.SegmentId, s.VolumeId, s.Epoch, s.SealCommitted, s.Destaged, s.Records.ToArray())
                : null;
        }
    }

    /// <summary>The committed record of <paramref name="segmentId"/> with <paramref name="lsn"/>, or null when there is none (any more).</summary>
    public LogIndexEntry? FindRecord(Guid segmentId, Lsn lsn)
    {
        lock (_lock)
        {
            return _segments.TryGetValue(segmentId, out var s) && s.ByLsn.TryGetValue(lsn, out var at) ? s.Records[at] : null;
        }
    }

    /// <summary>Ids of all segments the log knows (committed or admitted records, or recovered).</summary>
    public IReadOnlyList<Guid> GetSegmentIds()
    {
        lock (_lock)
        {
            return [.. _segments.Keys];
        }
    }

    /// <summary>The epoch a volume is fenced at, or null when it never was.</summary>
    public ulong? GetFenceEpoch(Guid volumeId)
    {
        lock (_lock)
        {
            return _fences.TryGetValue(volumeId, out var fence) ? fence.Epoch : null;
        }
    }

    /// <summary>Chunk file numbers currently in use, in order.</summary>
    public IReadOnlyList<long> GetChunkNumbers()
    {
        lock (_lock)
        {
            return [.. _chunks.Keys];
        }
    }
}
