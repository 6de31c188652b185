using Converge.Log;

namespace Converge.DataPath;

/// <summary>
/// One segment of one storage node's log, keyed <c>storage-N/segmentId</c> and pinned to that node. The node's single
/// log writer group-commits appends from every segment; this grain is the addressable face of one volume's range.
/// </summary>
[Alias("Converge.ILogSegmentGrain")]
public interface ILogSegmentGrain : IGrainWithStringKey
{
    /// <summary>
    /// Appends one encoded record and answers once it is committed on this node. The bytes are the writer's,
    /// encoded once (header, payload, CRC) and sent unchanged to both mirrors.
    /// </summary>
    [Alias("Append"), ResponseTimeout("00:00:02")]
    Task<MirrorStatus> AppendCommittedAsync([Immutable] ReadOnlyMemory<byte> encodedRecord);

    /// <summary>
    /// Appends several encoded records laid end to end (each delimited by its own header's payload length) and answers,
    /// once every one is committed or refused, one status per record in order. One call instead of one per record: at
    /// a high queue depth the writer sends whatever gathered while its previous batches were in flight.
    /// </summary>
    [Alias("AppendBatch"), ResponseTimeout("00:00:02")]
    Task<MirrorStatus[]> AppendCommittedBatchAsync([Immutable] ReadOnlyMemory<byte> encodedRecords);

    /// <summary>Refuses, from now on, appends for <paramref name="volumeId"/> from epochs older than <paramref name="epoch"/> on this node (fsync'd).</summary>
    [Alias("Fence"), ResponseTimeout("00:00:03")]
    Task<MirrorStatus> FenceAsync(Guid volumeId, ulong epoch);

    [Alias("Seal"), ResponseTimeout("00:00:03")]
    Task<MirrorStatus> SealAsync(Guid volumeId, ulong epoch);

    /// <summary>Reads <paramref name="lengthBytes"/> at <paramref name="offsetBytes"/> from the record with LSN <paramref name="lsn"/>.</summary>
    [Alias("Read"), ResponseTimeout("00:00:02")]
    Task<ReadReply> ReadAsync(Lsn lsn, ulong offsetBytes, int lengthBytes);

    /// <summary>The records this node holds for the segment, in log order; <see cref="MirrorStatus.Gone"/> when reclaimed.</summary>
    [Alias("Entries"), ResponseTimeout("00:00:05")]
    Task<(MirrorStatus Status, SegmentEntry[] Entries)> GetEntriesAsync();

    /// <summary>True when this node no longer holds the segment's records: destaged to both extent replicas, or unknown here.</summary>
    [Alias("Destaged"), ResponseTimeout("00:00:02")]
    Task<bool> IsDestagedAsync();

    /// <summary>Asked by the segment's other mirror when this node is the segment's destage leader.</summary>
    [Alias("LeaderDestage"), ResponseTimeout("00:00:02")]
    Task<LeaderDestage> GetLeaderDestageAsync();
}
