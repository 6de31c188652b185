namespace Converge.Storage;

/// <summary>
/// The two storage nodes holding one placement group's replicas, and the epoch of that assignment. While
/// <paramref name="Filling"/>, <paramref name="NodeB"/> is a new replica being copied from <paramref name="NodeA"/>:
/// destage writes to both, reads go to <paramref name="NodeA"/> only.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.GroupReplicas")]
public sealed record GroupReplicas(
    [property: Id(0)] string NodeA,
    [property: Id(1)] string NodeB,
    [property: Id(2)] ulong Epoch,
    [property: Id(3)] bool Filling = false)
{
    public bool Holds(string node) => NodeA == node || NodeB == node;

    /// <summary>Same two nodes, in either order (the epoch and filling flag aside).</summary>
    public bool SameNodes(GroupReplicas other) =>
        (NodeA == other.NodeA && NodeB == other.NodeB) || (NodeA == other.NodeB && NodeB == other.NodeA);
}

/// <summary>
/// Where a volume's extents live: extent <c>i</c> belongs to group <c>i % GroupCount</c>, and each group has two
/// replicas on two different storage nodes. One map per volume (one database row), never one row per extent.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.PlacementMap")]
public sealed record PlacementMap(
    [property: Id(0)] Guid VolumeId,
    [property: Id(1)] int BlockSizeBytes,
    [property: Id(2)] int ExtentSizeBytes,
    [property: Id(3)] GroupReplicas[] Groups,
    [property: Id(4)] bool Deleted)
{
    public int GroupCount => Groups.Length;

    public int BlocksPerExtent => ExtentSizeBytes / BlockSizeBytes;

    public int GroupOfBlock(long blockIndex) => (int)(blockIndex / BlocksPerExtent % Groups.Length);
}

/// <summary>
/// The placement of one volume's extents, keyed by the volume's immutable id (never its name) and persisted in the
/// metadata store. Control plane only: asked once per attach and once per destaged segment, never per I/O.
/// </summary>
[Alias("Converge.Storage.IVolumePlacementGrain")]
public interface IVolumePlacementGrain : IGrainWithGuidKey
{
    /// <summary>
    /// The volume's map, assigning every group to two distinct live storage nodes (spread evenly) on first use.
    /// Fails with <see cref="InvalidOperationException"/> when fewer than two storage nodes are live.
    /// </summary>
    [Alias("GetOrAssign")]
    Task<PlacementMap> GetOrAssignAsync(int blockSizeBytes);

    /// <summary>The map, or null when none was ever assigned.</summary>
    [Alias("Get")]
    Task<PlacementMap?> GetAsync();

    /// <summary>
    /// Re-replication, step one: group <paramref name="group"/> drops its replica on <paramref name="fromNode"/> and
    /// takes <paramref name="toNode"/> as a new, filling replica beside the survivor (epoch bumped). Idempotent: a group
    /// already moved to <paramref name="toNode"/> is returned as it is. Null when the group does not hold
    /// <paramref name="fromNode"/> (or <paramref name="toNode"/> already holds it otherwise).
    /// </summary>
    [Alias("BeginMove")]
    Task<GroupReplicas?> BeginMoveAsync(int group, string fromNode, string toNode);

    /// <summary>Re-replication, step two: the copy into the filling replica is durable; it serves reads from now on (epoch bumped).</summary>
    [Alias("CompleteMove")]
    Task<GroupReplicas?> CompleteMoveAsync(int group, ulong epoch);

    /// <summary>The volume is gone: remember it (so its log segments are dropped) and delete its extents on every replica, best effort.</summary>
    [Alias("MarkDeleted")]
    Task MarkDeletedAsync();
}
