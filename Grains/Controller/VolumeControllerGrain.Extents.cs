using System.Diagnostics;
using Converge.Grains.Cluster;
using Converge.Grains.Placement;
using Converge.Storage;
using Lsn = Converge.Log.Lsn;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>
    /// Reads a block range from the extent replicas of its groups (one call per extent piece, first replica then the
    /// other) into <paramref name="result"/> at the range's place. A replica's answer is taken only when no block is
    /// corrupt and every block is at least <paramref name="minLsn"/>; false when no replica gives such an answer.
    /// </summary>
    private async Task<bool> ReadExtentsIntoAsync(long firstBlock, int count, Lsn minLsn, byte[] result, long resultFirstBlock)
    {
        var blocksPerExtent = _placement!.BlocksPerExtent;
        var block = firstBlock;
        var end = firstBlock + count;
        while (block < end)
        {
            var pieceCount = (int)(Math.Min(end, ((block / blocksPerExtent) + 1) * blocksPerExtent) - block);
            var started = Stopwatch.GetTimestamp();
            var dropped = _dirtyDropped;
            var reply = await ReadReplicaAsync(block, pieceCount, minLsn);
            var mayCache = dropped == _dirtyDropped;
            cache.Counters.ExtentLatency.RecordSince(started);
            if (reply is null)
            {
                return false;
            }

            TakeExtentBlocks(reply, block, pieceCount, mayCache, result, resultFirstBlock);
            block += pieceCount;
        }

        return true;
    }

    /// <summary>
    /// Copies the first <paramref name="count"/> blocks of an extent reply (for blocks from <paramref name="block"/>)
    /// into the result, counts them, and caches each one only if no write newer than the extent's version completed
    /// while the read was out (<paramref name="mayCache"/>: no dirty entry was dropped meanwhile, since a pruned newer
    /// write might also have been evicted; and no newer dirty entry now). A dirty entry at most that old is superseded.
    /// </summary>
    private void TakeExtentBlocks(ExtentReadReply reply, long block, int count, bool mayCache, byte[] result, long resultFirstBlock)
    {
        var bs = BlockSizeBytes;
        CountExtentRead(reply, count);
        reply.Data.AsSpan(0, count * bs).CopyTo(result.AsSpan((int)((block - resultFirstBlock) * bs)));
        for (var i = 0; i < count; i++)
        {
            var extentBlock = reply.Blocks[i];
            if (mayCache && extentBlock.State == ExtentBlock.Data && (!_dirty.TryGetValue(block + i, out var dirty) || dirty.Lsn <= extentBlock.Lsn))
            {
                cache.Put(VolumeId, block + i, extentBlock.Lsn, reply.Data.AsSpan(i * bs, bs));
            }
        }
    }

    private void CountExtentRead(ExtentReadReply reply, int count)
    {
        var counters = cache.Counters;
        Interlocked.Add(ref counters.ExtentReadCount, count);
        Interlocked.Add(ref counters.ExtentReadByteCount, (long)count * BlockSizeBytes);
        var zeros = 0;
        for (var i = 0; i < count; i++)
        {
            zeros += reply.Blocks[i].State == ExtentBlock.Data ? 0 : 1;
        }

        if (zeros > 0)
        {
            Interlocked.Add(ref counters.ZeroReadCount, zeros);
        }
    }

    private async Task<ExtentReadReply?> ReadReplicaAsync(long block, int count, Lsn minLsn)
    {
        var placement = _placement!;
        if (await ReadReplicaAsync(placement, block, count, minLsn) is { } reply)
        {
            return reply;
        }

        // Neither replica answered: the group may have moved (re-replication) since this map was fetched.
        if (await RefreshPlacementAsync() is { } fresh && !fresh.Groups[fresh.GroupOfBlock(block)].Equals(placement.Groups[placement.GroupOfBlock(block)]))
        {
            return await ReadReplicaAsync(fresh, block, count, minLsn);
        }

        return null;
    }

    private async Task<ExtentReadReply?> ReadReplicaAsync(PlacementMap placement, long block, int count, Lsn minLsn)
    {
        var group = placement.GroupOfBlock(block);
        foreach (var node in CompleteReplicasInReadOrder(placement.Groups[group]))
        {
            ExtentReadReply reply;
            try
            {
                reply = await GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, VolumeId, group))
                    .ReadBlocksAsync(BlockSizeBytes, block, count);
            }
            catch (Exception e) when (CallFailure.Is(e))
            {
                MarkSuspect(node);
                continue;
            }

            if (reply.Status == ExtentStatus.Ok && reply.Data is { } data && data.Length >= count * BlockSizeBytes && Acceptable(reply, count, minLsn))
            {
                ClearSuspect(node);
                return reply;
            }
        }

        return null;
    }

    /// <summary>
    /// The replicas of a group that hold every block, in the order to ask them: while one is still being filled by
    /// re-replication only the survivor (NodeA); never a removed node; a suspect one last.
    /// </summary>
    private IEnumerable<string> CompleteReplicasInReadOrder(GroupReplicas replicas)
    {
        var (first, second) = replicas.Filling ? (replicas.NodeA, null) : ReadOrder(replicas.NodeA, replicas.NodeB);
        foreach (var node in new[] { first, second })
        {
            if (node is not null && !_removedNodes.Contains(node))
            {
                yield return node;
            }
        }
    }

    /// <summary>Fetches the volume's placement map and the removed nodes again (both change only on re-replication).</summary>
    private async Task<PlacementMap?> RefreshPlacementAsync()
    {
        try
        {
            var removed = await GrainFactory.GetGrain<IStorageRosterGrain>(0).GetRemovedNodesAsync();
            _removedNodes = new HashSet<string>(removed, StringComparer.Ordinal);
            if (await GrainFactory.GetGrain<IVolumePlacementGrain>(VolumeId).GetAsync() is { } map)
            {
                _placement = map;
            }

            _placementRefreshedTicks = System.Diagnostics.Stopwatch.GetTimestamp();
            return _placement;
        }
        catch (Exception e) when (CallFailure.Is(e))
        {
            return null;
        }
    }

    private static bool Acceptable(ExtentReadReply reply, int count, Lsn minLsn)
    {
        if (reply.Blocks.Length < count)
        {
            return false;
        }

        for (var i = 0; i < count; i++)
        {
            if (reply.Blocks[i].State == ExtentBlock.Corrupt || reply.Blocks[i].Lsn < minLsn)
            {
                return false;
            }
        }

        return true;
    }
}
