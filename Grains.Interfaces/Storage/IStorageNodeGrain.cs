namespace Converge.Storage;

/// <summary>A storage node's log and destage progress, for tests, diagnostics and stats.</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.StorageNodeStatus")]
public sealed record StorageNodeStatus(
    [property: Id(0)] string Node,
    [property: Id(1)] int ChunkCount,
    [property: Id(2)] long NvramUsedBytes,
    [property: Id(3)] int OpenSegments,
    [property: Id(4)] int SealedUndestagedSegments,
    [property: Id(5)] int DestagedSegments,
    [property: Id(6)] long DestagedPayloadBytes,
    [property: Id(7)] double DestageBusyMs,
    [property: Id(8)] int DestageFailures,
    [property: Id(9)] int SegmentsReleasedByLeader = 0,
    [property: Id(10)] Guid[]? OpenSegmentIds = null,
    [property: Id(11)] long NvramBudgetBytes = 0);

/// <summary>Counters of a node's log since the silo started. Records per group commit = records over batches.</summary>
[GenerateSerializer, Immutable, Alias("Converge.NodeLogStats")]
public sealed record NodeLogStats(
    [property: Id(0)] long GroupCommits,
    [property: Id(1)] long CommittedRecords,
    [property: Id(2)] long Fdatasyncs,
    [property: Id(3)] bool Poisoned,
    [property: Id(4)] string? Fault);

/// <summary>
/// The storage node itself, keyed <c>storage-N/node</c> and pinned there: diagnostics of its log and destage, for
/// tests, benchmarks and stats. Nothing on the I/O path calls it.
/// </summary>
[Alias("Converge.Storage.IStorageNodeGrain")]
public interface IStorageNodeGrain : IGrainWithStringKey
{
    /// <summary>The grain key's part after the node name.</summary>
    public const string KeySuffix = "node";

    [Alias("Status"), ResponseTimeout("00:00:05")]
    Task<StorageNodeStatus> GetStatusAsync();

    [Alias("GetLogStats"), ResponseTimeout("00:00:05")]
    Task<NodeLogStats> GetLogStatsAsync();

    /// <summary>This node was removed from the cluster for good: it stops serving its extents and log segments.</summary>
    [Alias("FenceRemoved"), ResponseTimeout("00:00:05")]
    Task FenceRemovedAsync();

    public static string Key(string node) => node + "/" + KeySuffix;
}
