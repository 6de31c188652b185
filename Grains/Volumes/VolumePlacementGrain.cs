using Converge.Cluster;
using Converge.Grains.Cluster;
using Converge.Grains.Extents;
using Converge.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Volumes;

/// <summary>Persisted placement of one volume (grain storage "meta"): one row per volume, never one per extent.</summary>
[GenerateSerializer, Alias("Converge.VolumePlacementState")]
public sealed class VolumePlacementState
{
    [Id(0)] public bool Assigned { get; set; }

    [Id(1)] public int BlockSizeBytes { get; set; }

    [Id(2)] public int ExtentSizeBytes { get; set; }

    [Id(3)] public List<GroupReplicas> Groups { get; set; } = [];

    [Id(4)] public bool Deleted { get; set; }
}

/// <summary>
/// Maps a volume's placement groups to pairs of storage nodes (DESIGN decision 9). Assigned once, spread evenly over
/// the storage nodes live at that moment, the two replicas of a group always on different nodes. Re-replication
/// moves a group off a removed node in two steps, each bumping the group's epoch: BeginMove (the new replica fills
/// while destage already writes to it) and CompleteMove (it serves reads). See docs/destage.md.
/// </summary>
[Converge.Grains.Placement.ControlPlanePlacement]
public sealed partial class VolumePlacementGrain(
    [PersistentState("placement", MetadataStorage.Name)] IPersistentState<VolumePlacementState> state,
    ClusterView clusterView,
    ILogger<VolumePlacementGrain> logger) : Grain, IVolumePlacementGrain
{
    private PlacementMap? _map;

    private Guid VolumeId => this.GetPrimaryKey();

    public async Task<PlacementMap> GetOrAssignAsync(int blockSizeBytes)
    {
        if (state.State.Assigned)
        {
            if (state.State.BlockSizeBytes != blockSizeBytes)
            {
                throw new ArgumentException($"volume {VolumeId:D} is placed with {state.State.BlockSizeBytes}-byte blocks, not {blockSizeBytes}");
            }

            return Map();
        }

        if (state.State.Deleted)
        {
            throw new InvalidOperationException($"volume {VolumeId:D} is deleted");
        }

        // A removed node that came back is an active member but must never be given data again.
        var removed = await GrainFactory.GetGrain<IStorageRosterGrain>(0).GetRemovedNodesAsync();
        var nodes = (await clusterView.WaitForActiveNodesAsync(NodeRoles.Storage, 2, TimeSpan.FromSeconds(10)))
            .Where(n => Array.IndexOf(removed, n) < 0).ToList();
        state.State.Groups = Assign(nodes, new ExtentStoreOptions().GroupCount);
        state.State.BlockSizeBytes = blockSizeBytes;
        state.State.ExtentSizeBytes = ExtentStoreOptions.DefaultExtentSizeBytes;
        state.State.Assigned = true;
        await state.WriteStateAsync();
        LogAssigned(VolumeId, state.State.Groups.Count, nodes.Count);
        return Map();
    }

    public Task<PlacementMap?> GetAsync() => Task.FromResult(state.State.Assigned || state.State.Deleted ? Map() : null);

    public async Task<GroupReplicas?> BeginMoveAsync(int group, string fromNode, string toNode)
    {
        if (!state.State.Assigned || group < 0 || group >= state.State.Groups.Count)
        {
            return null;
        }

        var current = state.State.Groups[group];
        if (current.NodeB == toNode && current.Filling && current.NodeA != fromNode)
        {
            return current;
        }

        if (!current.Holds(fromNode) || current.Holds(toNode) || fromNode == toNode)
        {
            return null;
        }

        var survivor = current.NodeA == fromNode ? current.NodeB : current.NodeA;
        return await SetGroupAsync(group, new GroupReplicas(survivor, toNode, current.Epoch + 1, Filling: true));
    }

    public async Task<GroupReplicas?> CompleteMoveAsync(int group, ulong epoch)
    {
        if (!state.State.Assigned || group < 0 || group >= state.State.Groups.Count)
        {
            return null;
        }

        var current = state.State.Groups[group];
        if (current.Epoch != epoch || !current.Filling)
        {
            return current.Epoch == epoch + 1 && !current.Filling ? current : null;
        }

        return await SetGroupAsync(group, current with { Epoch = epoch + 1, Filling = false });
    }

    private async Task<GroupReplicas> SetGroupAsync(int group, GroupReplicas replicas)
    {
        var previous = state.State.Groups[group];
        state.State.Groups[group] = replicas;
        _map = null;
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            state.State.Groups[group] = previous;
            _map = null;
            throw;
        }

        LogMoved(VolumeId, group, replicas.NodeA, replicas.NodeB, replicas.Epoch, replicas.Filling);
        return replicas;
    }

    public async Task MarkDeletedAsync()
    {
        if (!state.State.Deleted)
        {
            state.State.Deleted = true;
            _map = null;
            await state.WriteStateAsync();
        }

        var deletes = new List<Task>();
        var groups = state.State.Groups;
        for (var g = 0; g < groups.Count; g++)
        {
            deletes.Add(Replica(groups[g].NodeA, g).DeleteAsync());
            deletes.Add(Replica(groups[g].NodeB, g).DeleteAsync());
        }

        try
        {
            await Task.WhenAll(deletes);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or Placement.NodeUnavailableException or IOException)
        {
            // A node that is down keeps its files until it is asked again; its destage drops the volume's segments meanwhile.
            LogDeleteIncomplete(VolumeId, e.Message);
        }
    }

    /// <summary>
    /// Group g goes to nodes[g % n] and the node a rotating stride after it, so every node holds about 2 x groups / n
    /// replicas and every pair of nodes shares some groups (a lost node's load spreads over all the others).
    /// </summary>
    public static List<GroupReplicas> Assign(IReadOnlyList<string> nodes, int groupCount)
    {
        if (nodes.Count < 2)
        {
            throw new InvalidOperationException($"placing extents needs two live storage nodes; {nodes.Count} are active");
        }

        var n = nodes.Count;
        var groups = new List<GroupReplicas>(groupCount);
        for (var g = 0; g < groupCount; g++)
        {
            var a = g % n;
            var b = (a + 1 + (g / n % (n - 1))) % n;
            System.Diagnostics.Debug.Assert(a != b, "the two replicas of a group must be on different nodes");
            groups.Add(new GroupReplicas(nodes[a], nodes[b], 1));
        }

        return groups;
    }

    private PlacementMap Map() => _map ??= new PlacementMap(VolumeId, state.State.BlockSizeBytes, state.State.ExtentSizeBytes,
        [.. state.State.Groups], state.State.Deleted);

    private IExtentReplicaGrain Replica(string node, int group) =>
        GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, VolumeId, group));

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {VolumeId}: {Groups} placement groups assigned over {Nodes} storage nodes")]
    private partial void LogAssigned(Guid volumeId, int groups, int nodes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {VolumeId}: group {Group} now on {NodeA} and {NodeB}, epoch {Epoch}, filling {Filling}")]
    private partial void LogMoved(Guid volumeId, int group, string nodeA, string nodeB, ulong epoch, bool filling);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {VolumeId}: extents not deleted on every replica: {Reason}")]
    private partial void LogDeleteIncomplete(Guid volumeId, string reason);
}
