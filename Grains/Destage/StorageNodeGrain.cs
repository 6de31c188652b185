using Converge.Grains.Cluster;
using Converge.Grains.Placement;
using Converge.Grains.Segments;
using Converge.Storage;

namespace Converge.Grains.Destage;

/// <summary>The storage node's own status: log chunks, NVRAM use, segments by state and destage progress.</summary>
[NodePinnedPlacement, Orleans.Concurrency.Reentrant]
public sealed class StorageNodeGrain(StorageNodeLog nodeLog, DestageService destage, LocalNode node, Rereplication.NodeFence fence) : Grain, IStorageNodeGrain
{
    public Task FenceRemovedAsync()
    {
        fence.Fence();
        return Task.CompletedTask;
    }

    public Task<StorageNodeStatus> GetStatusAsync()
    {
        var log = nodeLog.Log;
        int sealedUndestaged = 0, destaged = 0;
        var open = new List<Guid>();
        foreach (var id in log.GetSegmentIds())
        {
            var info = log.GetSegment(id);
            if (info is null)
            {
                continue;
            }

            if (info.IsDestaged)
            {
                destaged++;
            }
            else if (info.IsSealed)
            {
                sealedUndestaged++;
            }
            else
            {
                open.Add(id);
            }
        }

        return Task.FromResult(new StorageNodeStatus(node.Name, log.GetChunkNumbers().Count, log.NvramUsedBytes, open.Count, sealedUndestaged,
            destaged, destage.DestagedPayloadBytes, destage.BusyMs, destage.Failures, destage.SegmentsReleasedByLeader, [.. open], log.NvramBudgetBytes));
    }

    public Task<NodeLogStats> GetLogStatsAsync()
    {
        var log = nodeLog.Log;
        return Task.FromResult(new NodeLogStats(log.BatchCount, log.CommittedRecordCount, log.FlushCount, log.IsPoisoned, log.FaultMessage));
    }
}
