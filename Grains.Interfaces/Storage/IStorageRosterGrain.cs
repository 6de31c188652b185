namespace Converge.Storage;

/// <summary>Answer to a node removal: refused with a reason, or accepted (re-replication then runs in the background).</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.RemoveNodeResult")]
public sealed record RemoveNodeResult(
    [property: Id(0)] bool Ok,
    [property: Id(1)] string Message);

/// <summary>
/// Progress of re-replication, and the health of placement groups at the time of the call. A group is degraded when a
/// replica is on a removed node, is still filling, or is on a node that is not an active member.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.RereplicationStatus")]
public sealed record RereplicationStatus(
    [property: Id(0)] bool Running,
    [property: Id(1)] string[] RemovedNodes,
    [property: Id(2)] int GroupsToCopy,
    [property: Id(3)] int GroupsCopied,
    [property: Id(4)] int GroupsFailed,
    [property: Id(5)] long BytesCopied,
    [property: Id(6)] double ElapsedMs,
    [property: Id(7)] int DegradedGroups,
    [property: Id(8)] int LostGroups,
    [property: Id(9)] string LastError,
    [property: Id(10)] long Passes)
{
    public double MegabytesPerSecond => ElapsedMs <= 0 ? 0 : BytesCopied / 1e6 / (ElapsedMs / 1000);
}

/// <summary>
/// The storage nodes removed from the cluster for good (persisted, control plane) and the re-replication that restores
/// two replicas of every placement group whose replica was on one. A node that is merely down is not in this list and
/// nothing is moved away from it.
/// </summary>
[Alias("Converge.Storage.IStorageRosterGrain")]
public interface IStorageRosterGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// Records <paramref name="node"/> as removed for good, fences it if it answers, and starts re-replication. Refused
    /// (nothing changes) for a name that is not a storage node, the node hosting the control plane, or when fewer than
    /// two other storage nodes are live. Removing a node already removed restarts re-replication if work is left.
    /// </summary>
    [Alias("RemoveNode"), ResponseTimeout("00:00:30")]
    Task<RemoveNodeResult> RemoveNodeAsync(string node);

    /// <summary>
    /// Removes, as <see cref="RemoveNodeAsync"/> would, every storage node that this activation saw active and that has
    /// not been active for <paramref name="removeAfter"/> since (zero: nothing). Called every few seconds by each storage
    /// silo; returns the nodes removed by this call.
    /// </summary>
    [Alias("CheckDeadNodes"), ResponseTimeout("00:00:30")]
    Task<string[]> CheckDeadNodesAsync(TimeSpan removeAfter);

    [Alias("GetRemoved")]
    Task<string[]> GetRemovedNodesAsync();

    [Alias("IsRemoved")]
    Task<bool> IsRemovedAsync(string node);

    /// <summary>Progress of the current (or last) re-replication, with a fresh count of degraded groups.</summary>
    [Alias("GetStatus"), ResponseTimeout("00:00:30")]
    Task<RereplicationStatus> GetStatusAsync();
}
