using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Grains.Extents;
using Converge.Grains.Placement;
using Converge.Storage;

namespace Converge.Grains.Controller;

/// <summary>
/// Allocation (NBD BLOCK_STATUS): which runs of a volume read as zeros with nothing stored for them, so that copy tools
/// (qemu-img convert, nbdcopy) can skip them. Reporting data for a run that reads as zeros only costs the client a
/// read; reporting zeros for a run that holds data loses that data in the copy. So a run is reported zero only when
/// that is proven, and every doubt answers data.
/// </summary>
public sealed partial class VolumeControllerGrain
{
    public async Task<AllocationReply> GetAllocationAsync(long offsetBytes, long lengthBytes)
    {
        if (!await EnsureServingAsync())
        {
            return new AllocationReply(IoStatus.NotAttached, null);
        }

        if (!InRange(offsetBytes, lengthBytes) || lengthBytes == 0)
        {
            return new AllocationReply(IoStatus.OutOfRange, null);
        }

        BeginIo();
        try
        {
            var bs = BlockSizeBytes;
            var first = offsetBytes / bs;
            var end = Math.Min((offsetBytes + lengthBytes + bs - 1) / bs, first + VolumeBatch.MaxAllocationBlocks);
            var zero = await ProvenZeroBlocksAsync(first, (int)(end - first));

            var runs = new List<AllocationSpan>();
            var runStart = offsetBytes;
            var rangeEnd = Math.Min(offsetBytes + lengthBytes, end * bs);
            for (var i = 1; i <= zero.Length; i++)
            {
                if (i == zero.Length || zero[i] != zero[i - 1])
                {
                    var runEnd = Math.Min(rangeEnd, (first + i) * bs);
                    runs.Add(new AllocationSpan(runEnd - runStart, zero[i - 1]));
                    runStart = runEnd;
                }
            }

            return new AllocationReply(IoStatus.Ok, [.. runs]);
        }
        catch (DataPathException)
        {
            return new AllocationReply(IoStatus.NotAttached, null);
        }
        finally
        {
            EndIo();
        }
    }

    /// <summary>
    /// For each block of the range, whether it provably reads as zeros with no data stored. A block with a dirty entry
    /// counts as data whatever that entry is (a zero entry rebuilt at attach may be older than a write already destaged).
    /// A block without one has its newest version on both extent replicas, since entries go only once their destage is
    /// durable on both; the dirty map is looked at before the replicas are asked, so a destage that completes in
    /// between is seen on the replica. A replica that cannot answer leaves its blocks as data.
    /// </summary>
    private async Task<bool[]> ProvenZeroBlocksAsync(long first, int count)
    {
        var candidate = new bool[count];
        for (var i = 0; i < count; i++)
        {
            candidate[i] = !_dirty.ContainsKey(first + i);
        }

        var zero = new bool[count];
        var blocksPerExtent = _placement!.BlocksPerExtent;
        var pieces = new List<Task>();
        var block = first;
        while (block < first + count)
        {
            var pieceCount = (int)(Math.Min(first + count, ((block / blocksPerExtent) + 1) * blocksPerExtent) - block);
            var pieceFirst = block;
            if (Array.IndexOf(candidate, true, (int)(pieceFirst - first), pieceCount) >= 0)
            {
                pieces.Add(MarkZeroRunsAsync(pieceFirst, pieceCount, first, candidate, zero));
            }

            block += pieceCount;
        }

        await Task.WhenAll(pieces);
        return zero;
    }

    private async Task MarkZeroRunsAsync(long pieceFirst, int pieceCount, long first, bool[] candidate, bool[] zero)
    {
        if (await ReplicaAllocationAsync(pieceFirst, pieceCount) is not { } runs)
        {
            return;
        }

        foreach (var (runFirst, runCount, state) in runs)
        {
            if (state is not ((byte)BlockState.Unwritten or (byte)BlockState.Zero))
            {
                continue;
            }

            // Only what the replica was asked about, whatever it answered.
            var from = Math.Max(runFirst, pieceFirst);
            var to = Math.Min(runFirst + (long)runCount, pieceFirst + pieceCount);
            for (var b = from; b < to; b++)
            {
                var i = (int)(b - first);
                zero[i] = candidate[i];
            }
        }
    }

    /// <summary>
    /// The allocation of one extent piece from a replica that holds every block (not one still being filled by
    /// re-replication), in read order; null when none answers. When neither answers, the group may have moved since this
    /// controller fetched its map: it asks once more under a fresh map, as reads do.
    /// </summary>
    private async Task<(long FirstBlockIndex, int BlockCount, byte State)[]?> ReplicaAllocationAsync(long block, int count)
    {
        var placement = _placement!;
        if (await ReplicaAllocationAsync(placement, block, count) is { } runs)
        {
            return runs;
        }

        if (await RefreshPlacementAsync() is { } fresh && !fresh.Groups[fresh.GroupOfBlock(block)].Equals(placement.Groups[placement.GroupOfBlock(block)]))
        {
            return await ReplicaAllocationAsync(fresh, block, count);
        }

        return null;
    }

    private async Task<(long FirstBlockIndex, int BlockCount, byte State)[]?> ReplicaAllocationAsync(PlacementMap placement, long block, int count)
    {
        var group = placement.GroupOfBlock(block);
        foreach (var node in CompleteReplicasInReadOrder(placement.Groups[group]))
        {
            try
            {
                return await GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, VolumeId, group))
                    .GetAllocationAsync(BlockSizeBytes, block, count);
            }
            catch (Exception e) when (CallFailure.Is(e))
            {
                MarkSuspect(node);
            }
            catch (Exception)
            {
                // A removed node, an extent without valid metadata, anything else: ask the other replica, else say data.
            }
        }

        return null;
    }
}
