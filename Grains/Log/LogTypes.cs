using Converge.Log;

namespace Converge.Grains.Log;

/// <summary>Where a frame starts in the silo log: chunk file number and byte offset in it.</summary>
public readonly record struct LogAddress(long ChunkNumber, int OffsetBytes)
{
    public override string ToString() => $"{ChunkNumber}@{OffsetBytes}";
}

/// <summary>The expected outcomes of an append. Faults are exceptions (<see cref="Io.StorageFaultException"/>), never statuses.</summary>
public enum AppendStatus
{
    /// <summary>Committed: durable (fdatasync'd, or in the tmpfs file in memory mode) at <see cref="AppendResult.Address"/>.</summary>
    Ok = 0,

    /// <summary>The volume is fenced at a newer epoch than the record's; nothing was written.</summary>
    Fenced,

    /// <summary>The segment is sealed; nothing was written.</summary>
    Sealed,

    /// <summary>The segment reached <see cref="SiloLogOptions.MaxSegmentBytes"/>; seal it and open another.</summary>
    SegmentFull,

    /// <summary>The undestaged bytes stayed above the NVRAM budget for the whole wait; nothing was written.</summary>
    NvramFull,

    /// <summary>The pending queue stayed full for the whole wait; nothing was written.</summary>
    QueueFull,

    /// <summary>The bytes are not a valid record (bad CRC, length, kind) or contradict the segment (other volume or epoch).</summary>
    Invalid,
}

public readonly record struct AppendResult(AppendStatus Status, LogAddress Address)
{
    public bool IsCommitted => Status == AppendStatus.Ok;

    public static AppendResult Refused(AppendStatus status) => new(status, default);
}

/// <summary>One record of a segment as the in-memory index knows it.</summary>
public readonly record struct LogIndexEntry(LogAddress Address, Lsn Lsn, LogRecordKind Kind, ulong OffsetBytes, ulong LengthBytes, int RecordLengthBytes);

/// <summary>A snapshot of one segment: a range of the log belonging to one volume at one epoch.</summary>
public sealed record SegmentInfo(Guid SegmentId, Guid VolumeId, ulong Epoch, bool IsSealed, bool IsDestaged, IReadOnlyList<LogIndexEntry> Records);

public enum MarkDestagedStatus
{
    Ok = 0,
    UnknownSegment,

    /// <summary>Only sealed segments are destaged: an open one could still take appends.</summary>
    NotSealed,
}

/// <summary>
/// A region recovery found damaged in the middle of the log (a valid frame that was durable before follows it).
/// Its records are never returned as data; they are repaired from the mirror.
/// </summary>
/// <param name="ProbableSegmentId">From the record header read without its CRC; a hint for repair, null when unreadable.</param>
public sealed record CorruptRegion(LogAddress Start, int LengthBytes, ulong FirstMissingFrameSequence, ulong MissingFrameCount, Guid? ProbableSegmentId, Guid? ProbableVolumeId);

/// <summary>What <see cref="SiloLog.Open"/> found.</summary>
public sealed record RecoveryReport(
    int ChunkCount,
    long FrameCount,
    LogAddress? TruncatedAt,
    long TruncatedBytes,
    IReadOnlyList<CorruptRegion> CorruptRegions)
{
    public bool IsClean => TruncatedAt is null && CorruptRegions.Count == 0;
}

/// <summary>A read found a record whose frame or record CRC does not match: the data is never returned.</summary>
public sealed class LogCorruptionException(string message) : IOException(message);
