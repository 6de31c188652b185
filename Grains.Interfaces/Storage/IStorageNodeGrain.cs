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
    [property: Id(8)] int DestageFailures);

/// <summary>The storage node itself, keyed <c>storage-N/node</c> and pinned there.</summary>
[Alias("Converge.Storage.IStorageNodeGrain")]
public interface IStorageNodeGrain : IGrainWithStringKey
{
    [Alias("Status"), ResponseTimeout("00:00:05")]
    Task<StorageNodeStatus> GetStatusAsync();

    public static string Key(string node) => node + "/node";
}
