using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Storage;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>
    /// Every copy of one block this controller can reach, for diagnosis: nothing is cached, forgotten or marked suspect
    /// on the way, so asking does not change what the next read returns.
    /// </summary>
    public async Task<BlockCopy[]> DescribeBlockAsync(long block)
    {
        if (_attachment is null || _placement is null || block < 0 || block >= SizeBytes / BlockSizeBytes)
        {
            return [new BlockCopy("controller", "", null, _attachment is null ? "not attached here" : "block out of range")];
        }

        var bs = BlockSizeBytes;
        var copies = new List<BlockCopy>();
        var hasDirty = _dirty.TryGetValue(block, out var dirty);
        copies.Add(new BlockCopy("dirty map", hasDirty ? dirty.Lsn.ToString() : "", null,
            hasDirty
                ? $"segment {dirty.Segment.SegmentId} on {dirty.Segment.MirrorA}+{dirty.Segment.MirrorB}{(dirty.Zero ? ", zero" : "")}{(dirty.Recovered ? ", recovered at attach" : "")}"
                : $"clean (epoch {AttachedEpoch}, lost {_lost}, ready {_ready})"));

        var cached = new byte[bs];
        copies.Add(cache.TryRead(VolumeId, block, cached, out var cachedLsn)
            ? new BlockCopy("cache", cachedLsn.ToString(), cached, "")
            : new BlockCopy("cache", "", null, "miss"));

        if (hasDirty)
        {
            foreach (var node in new[] { dirty.Segment.MirrorA, dirty.Segment.MirrorB })
            {
                try
                {
                    var reply = await Mirror(node, dirty.Segment.SegmentId).ReadAsync(dirty.Lsn, (ulong)(block * bs), bs);
                    copies.Add(new BlockCopy($"log {node}", dirty.Lsn.ToString(), reply.Data, reply.Status.ToString()));
                }
                catch (Exception e) when (CallFailure.Is(e))
                {
                    copies.Add(new BlockCopy($"log {node}", "", null, e.GetType().Name));
                }
            }
        }

        var group = _placement.GroupOfBlock(block);
        var replicas = _placement.Groups[group];
        foreach (var node in new[] { replicas.NodeA, replicas.NodeB })
        {
            try
            {
                var reply = await GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, VolumeId, group)).ReadBlocksAsync(bs, block, 1);
                var lsn = reply.Blocks.Length > 0 ? reply.Blocks[0].Lsn.ToString() : "";
                var state = reply.Blocks.Length > 0 ? reply.Blocks[0].State.ToString() : "";
                copies.Add(new BlockCopy($"extent {node} group {group}{(replicas.Filling && node == replicas.NodeB ? " (filling)" : "")}", lsn, reply.Data, $"{reply.Status} {state}"));
            }
            catch (Exception e) when (CallFailure.Is(e))
            {
                copies.Add(new BlockCopy($"extent {node} group {group}", "", null, e.GetType().Name));
            }
        }

        return [.. copies];
    }
}
