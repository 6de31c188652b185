using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Grains.Placement;
using Converge.Log;
using Converge.Volumes;
using Orleans.Concurrency;

namespace Converge.Grains.Cache;

/// <summary>
/// The compute node's cache as the cluster sees it (<c>compute-N/cache</c>): counters, eviction and peer reads over
/// the node's one <see cref="BlockCache"/>. Reentrant: peer reads never wait for each other.
/// </summary>
[NodePinnedPlacement, Reentrant]
public sealed class CacheNodeGrain(BlockCache cache, LocalNode node) : Grain, ICacheNodeGrain
{
    public Task<CacheNodeStats> GetStatsAsync()
    {
        var c = cache.Counters;
        return Task.FromResult(new CacheNodeStats(
            node.Name,
            c.RamHits,
            c.RamHitBytes,
            c.FlashHits,
            c.FlashHitBytes,
            c.PeerHits,
            c.PeerHitBytes,
            c.LogReads,
            c.LogReadBytes,
            c.ExtentReads,
            c.ExtentReadBytes,
            c.ZeroReads,
            c.Misses,
            c.RamEvictions,
            c.FlashEvictions,
            c.PeerRejected,
            c.PeerCalls,
            c.PeerFailures,
            c.PeerServed,
            cache.RamBytes,
            cache.FlashBytes,
            Latency(c.RamLatency),
            Latency(c.FlashLatency),
            Latency(c.PeerLatency),
            Latency(c.LogLatency),
            Latency(c.ExtentLatency),
            c.DirectReads));
    }

    public async Task<long> EvictAsync(string volumeName, long offsetBytes, long lengthBytes)
    {
        var volume = await LookUpAsync(volumeName);
        return await EvictAsync(volume.VolumeId, volume.BlockSizeBytes, offsetBytes, lengthBytes);
    }

    public Task<long> EvictAsync(Guid volumeId, int blockSizeBytes, long offsetBytes, long lengthBytes)
    {
        if (VolumeRules.CheckBlockSize(blockSizeBytes) is { } blockError)
        {
            throw new ArgumentException(blockError, nameof(blockSizeBytes));
        }

        if (offsetBytes < 0 || lengthBytes <= 0 || lengthBytes > long.MaxValue - offsetBytes)
        {
            throw new ArgumentException($"cannot evict {lengthBytes} bytes at offset {offsetBytes}: offset must be non-negative and length positive");
        }

        var first = offsetBytes / blockSizeBytes;
        var count = ((offsetBytes + lengthBytes - 1) / blockSizeBytes) - first + 1;
        cache.InvalidateRange(volumeId, first, count);
        return Task.FromResult(count);
    }

    public async Task EvictVolumeAsync(string volumeName) => cache.DropVolume((await LookUpAsync(volumeName)).VolumeId);

    public Task EvictVolumeAsync(Guid volumeId)
    {
        cache.DropVolume(volumeId);
        return Task.CompletedTask;
    }

    public Task<PeerBlocksReply> PeerReadAsync(Guid volumeId, int blockSizeBytes, long firstBlock, int count)
    {
        if (VolumeRules.CheckBlockSize(blockSizeBytes) is { } blockError)
        {
            throw new ArgumentException(blockError, nameof(blockSizeBytes));
        }

        if (firstBlock < 0 || count is < 1 or > ICacheNodeGrain.MaxPeerReadBlocks)
        {
            throw new ArgumentException($"a peer read asks for 1 to {ICacheNodeGrain.MaxPeerReadBlocks} blocks from a non-negative index, not {count} from {firstBlock}");
        }

        var data = new byte[count * blockSizeBytes];
        var lsns = new Lsn[count];
        for (var i = 0; i < count; i++)
        {
            var target = data.AsSpan(i * blockSizeBytes, blockSizeBytes);
            if (cache.TryReadForPeer(volumeId, firstBlock + i, target, out var lsn))
            {
                lsns[i] = lsn;
            }
        }

        return Task.FromResult(new PeerBlocksReply(data, lsns));
    }

    private async Task<VolumeInfo> LookUpAsync(string volumeName)
    {
        var result = await GrainFactory.GetGrain<IVolumeGrain>(volumeName).GetAsync();
        return result.Ok ? result.Volume! : throw new ArgumentException(result.Message, nameof(volumeName));
    }

    private static TierLatency Latency(LatencyHistogram histogram) =>
        new(histogram.Count, histogram.PercentileMicroseconds(0.50), histogram.PercentileMicroseconds(0.99));
}
