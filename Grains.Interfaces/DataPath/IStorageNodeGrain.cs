namespace Converge.DataPath;

/// <summary>
/// Diagnostics of one storage node's log, keyed <c>storage-N/node</c> and pinned to that node (see
/// <see cref="Cluster.NodeRoles.PinnedKey"/>). Read by benchmarks and fault drills; nothing on the I/O path calls it.
/// </summary>
[Alias("Converge.IStorageNodeGrain")]
public interface IStorageNodeGrain : IGrainWithStringKey
{
    /// <summary>The grain key's part after the node name.</summary>
    public const string KeySuffix = "node";

    [Alias("GetLogStats"), ResponseTimeout("00:00:05")]
    Task<NodeLogStats> GetLogStatsAsync();
}

/// <summary>Counters of a node's log since the silo started. Records per group commit = records over batches.</summary>
[GenerateSerializer, Immutable, Alias("Converge.NodeLogStats")]
public sealed record NodeLogStats(
    [property: Id(0)] long GroupCommits,
    [property: Id(1)] long CommittedRecords,
    [property: Id(2)] long Fdatasyncs,
    [property: Id(3)] bool Poisoned,
    [property: Id(4)] string? Fault);
