using Converge.Cluster;
using Converge.Storage;
using Converge.Volumes;

namespace Converge.Grains.Rereplication;

public sealed partial class StorageRosterGrain
{
    /// <summary>One group to fill: its replicas after BeginMove (NodeA the survivor, NodeB filling).</summary>
    private sealed record Move(Guid VolumeId, int BlockSizeBytes, int Group, GroupReplicas Replicas);

    /// <summary>
    /// Begins a move for every group with a replica on a removed node (new node: the live one with the fewest replicas,
    /// not already in the group), and collects groups still filling from an earlier pass.
    /// </summary>
    private async Task<List<Move>> PlanAsync()
    {
        var removed = new HashSet<string>(state.State.Removed, StringComparer.Ordinal);
        var live = clusterView.ActiveNodes(NodeRoles.Storage).Where(n => !removed.Contains(n)).ToList();
        var maps = await LoadMapsAsync();
        var load = live.ToDictionary(n => n, _ => 0, StringComparer.Ordinal);
        foreach (var map in maps)
        {
            foreach (var g in map.Groups)
            {
                load[g.NodeA] = load.GetValueOrDefault(g.NodeA) + 1;
                load[g.NodeB] = load.GetValueOrDefault(g.NodeB) + 1;
            }
        }

        var work = new List<Move>();
        foreach (var map in maps)
        {
            var placement = GrainFactory.GetGrain<IVolumePlacementGrain>(map.VolumeId);
            for (var group = 0; group < map.GroupCount; group++)
            {
                var replicas = map.Groups[group];
                var removedA = removed.Contains(replicas.NodeA);
                var removedB = removed.Contains(replicas.NodeB);
                if ((removedA && removedB) || (removedA && replicas.Filling))
                {
                    // No complete replica left on a live node: nothing to copy from.
                    LogLost(map.VolumeId, group);
                    continue;
                }

                if (removedA || removedB)
                {
                    var from = removedA ? replicas.NodeA : replicas.NodeB;
                    var target = live.Where(n => !replicas.Holds(n)).OrderBy(n => load[n]).ThenBy(n => n, StringComparer.Ordinal).FirstOrDefault();
                    if (target is null)
                    {
                        _lastError = $"no live storage node can take a replica of volume {map.VolumeId:D} group {group}";
                        Interlocked.Increment(ref _groupsFailed);
                        continue;
                    }

                    load[target]++;
                    var moved = await placement.BeginMoveAsync(group, from, target);
                    if (moved is null)
                    {
                        continue;
                    }

                    replicas = moved;
                }

                if (replicas.Filling)
                {
                    work.Add(new Move(map.VolumeId, map.BlockSizeBytes, group, replicas));
                }
            }
        }

        return work;
    }

    /// <summary>Copies every extent of the group from the survivor into the filling replica, then lets the latter serve.</summary>
    private async Task CopyGroupAsync(Move move)
    {
        var (volumeId, bs, group, replicas) = move;
        try
        {
            var source = Replica(replicas.NodeA, volumeId, group);
            var target = Replica(replicas.NodeB, volumeId, group);
            var extents = await source.ListExtentsAsync(bs);
            foreach (var extent in extents)
            {
                var reply = await target.CopyExtentFromAsync(bs, replicas.NodeA, extent);
                Interlocked.Add(ref _bytesCopied, reply.BytesTransferred);
                if (reply.Status != ExtentStatus.Ok)
                {
                    throw new InvalidOperationException($"extent {extent}: {reply.Message}");
                }
            }

            if (await GrainFactory.GetGrain<IVolumePlacementGrain>(volumeId).CompleteMoveAsync(group, replicas.Epoch) is null)
            {
                throw new InvalidOperationException($"the group changed (epoch {replicas.Epoch}) while it was copied");
            }

            Interlocked.Increment(ref _groupsCopied);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException or Placement.NodeUnavailableException)
        {
            Interlocked.Increment(ref _groupsFailed);
            _lastError = $"volume {volumeId:D} group {group}: {e.Message}";
            LogGroupFailed(volumeId, group, e.Message);
        }
    }

    /// <summary>The placement maps of every listed volume that has one and is not deleted.</summary>
    private async Task<List<PlacementMap>> LoadMapsAsync()
    {
        var volumes = await GrainFactory.GetGrain<IVolumeCatalogGrain>(0).ListAsync();
        var maps = new List<PlacementMap>(volumes.Count);
        foreach (var volume in volumes)
        {
            if (await GrainFactory.GetGrain<IVolumePlacementGrain>(volume.VolumeId).GetAsync() is { Deleted: false } map)
            {
                maps.Add(map);
            }
        }

        return maps;
    }

    private async Task<(int Degraded, int Lost)> CountDegradedAsync()
    {
        var removed = new HashSet<string>(state.State.Removed, StringComparer.Ordinal);
        var live = new HashSet<string>(clusterView.ActiveNodes(NodeRoles.Storage), StringComparer.Ordinal);
        int degraded = 0, lost = 0;
        foreach (var map in await LoadMapsAsync())
        {
            foreach (var g in map.Groups)
            {
                var okA = live.Contains(g.NodeA) && !removed.Contains(g.NodeA);
                var okB = live.Contains(g.NodeB) && !removed.Contains(g.NodeB) && !g.Filling;
                if (!okA || !okB)
                {
                    degraded++;
                }

                if ((removed.Contains(g.NodeA) && removed.Contains(g.NodeB)) || (removed.Contains(g.NodeA) && g.Filling))
                {
                }
            }
        }

        return (degraded, lost);
    }

    private IExtentReplicaGrain Replica(string node, Guid volumeId, int group) =>
        GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, volumeId, group));
}
