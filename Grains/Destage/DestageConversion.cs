using Converge.Log;
using Converge.Storage;

namespace Converge.Grains.Destage;

/// <summary>
/// Turns one log record into extent-store writes: whole blocks, split at extent boundaries (an extent write never
/// crosses one), data records as <see cref="ExtentWriteKind.Data"/> slices of the record's payload and zero records
/// (TRIM, WRITE_ZEROES) as <see cref="ExtentWriteKind.Zero"/> with no payload. Pure: no I/O, nothing retained.
/// </summary>
public static class DestageConversion
{
    /// <summary>
    /// The writes for one record. <paramref name="payload"/> (data records only) must hold exactly
    /// <paramref name="lengthBytes"/>; the writes slice it, so it must outlive their apply.
    /// </summary>
    /// <exception cref="InvalidDataException">The record is not block-aligned or its payload length disagrees with it.</exception>
    public static IEnumerable<ExtentWrite> ToExtentWrites(Guid volumeId, LogRecordKind kind, Converge.Log.Lsn lsn, ulong offsetBytes,
        ulong lengthBytes, ReadOnlyMemory<byte> payload, int blockSizeBytes, int blocksPerExtent)
    {
        if (blockSizeBytes <= 0 || blocksPerExtent <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSizeBytes), "block size and blocks per extent must be positive");
        }

        if (kind is not (LogRecordKind.Write or LogRecordKind.Zero))
        {
            throw new ArgumentException($"only write and zero records are destaged, not {kind}", nameof(kind));
        }

        if (offsetBytes % (ulong)blockSizeBytes != 0 || lengthBytes % (ulong)blockSizeBytes != 0 || lengthBytes == 0)
        {
            throw new InvalidDataException($"record {lsn} covers {offsetBytes}+{lengthBytes}, not whole {blockSizeBytes}-byte blocks");
        }

        if (kind == LogRecordKind.Write && (ulong)payload.Length != lengthBytes)
        {
            throw new InvalidDataException($"record {lsn} says {lengthBytes} bytes but carries {payload.Length}");
        }

        return Split(volumeId, kind, lsn.ToExtentLsn(), (long)(offsetBytes / (ulong)blockSizeBytes),
            (long)(lengthBytes / (ulong)blockSizeBytes), payload, blockSizeBytes, blocksPerExtent);
    }

    private static IEnumerable<ExtentWrite> Split(Guid volumeId, LogRecordKind kind, Converge.Storage.Lsn lsn, long firstBlock,
        long blockCount, ReadOnlyMemory<byte> payload, int blockSizeBytes, int blocksPerExtent)
    {
        var block = firstBlock;
        var end = firstBlock + blockCount;
        while (block < end)
        {
            var extentEnd = ((block / blocksPerExtent) + 1) * blocksPerExtent;
            var count = (int)(Math.Min(end, extentEnd) - block);
            if (kind == LogRecordKind.Zero)
            {
                yield return ExtentWrite.Zero(volumeId, block, count, lsn);
            }
            else
            {
                var start = (int)((block - firstBlock) * blockSizeBytes);
                yield return ExtentWrite.Data(volumeId, block, lsn, payload.Slice(start, count * blockSizeBytes), blockSizeBytes);
            }

            block += count;
        }
    }
}
