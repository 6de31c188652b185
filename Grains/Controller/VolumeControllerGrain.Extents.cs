using System.Diagnostics;
using Converge.Grains.Placement;
using Lsn = Converge.Log.Lsn;
using Converge.Storage;

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
        var bs = BlockSizeBytes;
        var blocksPerExtent = _placement!.BlocksPerExtent;
        var block = firstBlock;
        var end = firstBlock + count;
        while (block < end)
        {
            var pieceCount = (int)(Math.Min(end, ((block / blocksPerExtent) + 1) * blocksPerExtent) - block);
            var started = Stopwatch.GetTimestamp();
            var reply = await ReadReplicaAsync(block, pieceCount, minLsn);
            cache.Counters.ExtentLatency.RecordSince(started);
            if (reply is null)
            {
                return false;
            }

            CountExtentRead(reply, pieceCount);

            var offset = (int)((block - resultFirstBlock) * bs);
            reply.Data.AsSpan(0, pieceCount * bs).CopyTo(result.AsSpan(offset));
            for (var i = 0; i < pieceCount; i++)
            {
                // Cached only if no write newer than the extent's version completed while this read was out (that
                // write has its own dirty entry and cached copy); a dirty entry at most that old is superseded by it.
                var extentBlock = reply.Blocks[i];
                if (extentBlock.State == ExtentBlock.Data && (!_dirty.TryGetValue(block + i, out var dirty) || dirty.Lsn <= extentBlock.Lsn))
                {
                    cache.Put(VolumeId, block + i, extentBlock.Lsn, reply.Data.AsSpan(i * bs, bs));
                }
            }

            block += pieceCount;
        }

        return true;
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
        var group = _placement!.GroupOfBlock(block);
        var replicas = _placement.Groups[group];
        foreach (var node in new[] { replicas.NodeA, replicas.NodeB })
        {
            ExtentReadReply reply;
            try
            {
                reply = await GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, VolumeId, group))
                    .ReadBlocksAsync(BlockSizeBytes, block, count);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or NodeUnavailableException)
            {
                continue;
            }

            if (reply.Status == ExtentStatus.Ok && reply.Data is { } data && data.Length >= count * BlockSizeBytes && Acceptable(reply, count, minLsn))
            {
                return reply;
            }
        }

        return null;
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
