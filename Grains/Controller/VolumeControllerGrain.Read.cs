using Converge.DataPath;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>The most one read may ask for (the NBD server splits nothing larger than its own 32 MiB limit).</summary>
    private const int MaxReadBytes = 32 * 1024 * 1024;

    public async Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes)
    {
        if (!MayServe())
        {
            return new VolumeReadReply(IoStatus.NotAttached, null);
        }

        if (!InRange(offsetBytes, lengthBytes) || lengthBytes <= 0 || lengthBytes > MaxReadBytes)
        {
            return new VolumeReadReply(IoStatus.OutOfRange, null);
        }

        BeginIo();
        try
        {
            var bs = BlockSizeBytes;
            var first = offsetBytes / bs;
            var last = (offsetBytes + lengthBytes - 1) / bs;
            var blocks = await ReadBlocksAsync(first, (int)(last - first + 1));
            if (blocks.Status != IoStatus.Ok)
            {
                return new VolumeReadReply(blocks.Status, null);
            }

            var skip = (int)(offsetBytes - first * bs);
            if (skip == 0 && blocks.Data.Length == lengthBytes)
            {
                return new VolumeReadReply(IoStatus.Ok, blocks.Data);
            }

            return new VolumeReadReply(IoStatus.Ok, blocks.Data.AsSpan(skip, lengthBytes).ToArray());
        }
        finally
        {
            EndIo();
        }
    }

    /// <summary>
    /// Reads whole blocks: from the node's cache when its LSN matches the dirty map, else from a mirror of the segment
    /// holding the newest version (one call per run of blocks from the same record); never-written blocks are zeros.
    /// </summary>
    private async Task<(IoStatus Status, byte[] Data)> ReadBlocksAsync(long firstBlock, int count)
    {
        var bs = BlockSizeBytes;
        var result = new byte[count * bs];
        var block = firstBlock;
        var end = firstBlock + count;
        while (block < end)
        {
            var target = result.AsMemory((int)((block - firstBlock) * bs), bs);
            _dirty.TryGetValue(block, out var dirty);
            var isDirty = dirty.Segment is not null;
            if (isDirty ? cache.TryRead(VolumeId, block, dirty.Lsn, target.Span) : cache.TryRead(VolumeId, block, target.Span, out _))
            {
                block++;
                continue;
            }

            if (!isDirty || dirty.Zero)
            {
                block++;
                continue;
            }

            // A run of following blocks written by the same record is fetched in one call.
            var runEnd = block + 1;
            while (runEnd < end && _dirty.TryGetValue(runEnd, out var next) && next.Lsn == dirty.Lsn && !next.Zero)
            {
                runEnd++;
            }

            var runLength = (int)((runEnd - block) * bs);
            var reply = await ReadFromMirrorsAsync(dirty, (ulong)(block * bs), runLength);
            if (reply.Status != MirrorStatus.Ok)
            {
                return (IoStatus.IoError, []);
            }

            reply.Data!.CopyTo(result.AsMemory((int)((block - firstBlock) * bs), runLength));
            for (var b = block; b < runEnd; b++)
            {
                cache.Put(VolumeId, b, dirty.Lsn, reply.Data.AsSpan((int)((b - block) * bs), bs));
            }

            block = runEnd;
        }

        return (IoStatus.Ok, result);
    }

    private async Task<ReadReply> ReadFromMirrorsAsync(DirtyEntry dirty, ulong offsetBytes, int lengthBytes)
    {
        var last = new ReadReply(MirrorStatus.Gone, null);
        foreach (var node in new[] { dirty.Segment.MirrorA, dirty.Segment.MirrorB })
        {
            try
            {
                last = await Mirror(node, dirty.Segment.SegmentId).ReadAsync(dirty.Lsn, offsetBytes, lengthBytes);
                if (last.Status == MirrorStatus.Ok && last.Data?.Length == lengthBytes)
                {
                    return last;
                }
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or Placement.NodeUnavailableException)
            {
                last = new ReadReply(MirrorStatus.Faulted, null);
            }
        }

        return last;
    }
}
