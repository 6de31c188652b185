using Converge.DataPath;
using Converge.Grains.Placement;
using Orleans.Concurrency;

namespace Converge.Grains.Segments;

/// <summary>Reports the counters of the node's one log; holds no state of its own.</summary>
[NodePinnedPlacement, Reentrant]
public sealed class StorageNodeGrain(StorageNodeLog nodeLog) : Grain, IStorageNodeGrain
{
    public Task<NodeLogStats> GetLogStatsAsync()
    {
        var log = nodeLog.Log;
        return Task.FromResult(new NodeLogStats(log.BatchCount, log.CommittedRecordCount, log.FlushCount, log.IsPoisoned, log.FaultMessage));
    }
}
