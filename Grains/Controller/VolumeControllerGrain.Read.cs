using System.Buffers;
using System.Diagnostics;
using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Log;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>The most one read may ask for (the NBD server splits nothing larger than its own 32 MiB limit).</summary>
    private const int MaxReadBytes = 32 * 1024 * 1024;

    public async Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes)
    {
        if (!await EnsureServingAsync())
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
        catch (DataPathException)
        {
            // Detached underneath this I/O (a close gave up waiting for it): nothing was acknowledged.
            return new VolumeReadReply(IoStatus.NotAttached, null);
        }
        finally
        {
            EndIo();
        }
    }

    /// <summary>
    /// Reads whole blocks, each from the first tier that can prove it current: this node's cache (RAM, then flash), the
    /// previous holder's cache (see <see cref="ReadFromPeerAsync"/>), then storage. A block with a dirty entry is read
    /// from the cache when its LSN matches, else from a mirror of the segment holding that version (one call per run
    /// from the same record), and from the extent replicas once no mirror serves that LSN and one answers Gone, accepting only extent
    /// blocks at least that new. A block with no dirty entry was destaged or never written: it comes from a cache or the
    /// extent replicas (which answer zeros for holes).
    /// </summary>
    private async Task<(IoStatus Status, byte[] Data)> ReadBlocksAsync(long firstBlock, int count)
    {
        var bs = BlockSizeBytes;
        var result = new byte[count * bs];
        var missing = ArrayPool<bool>.Shared.Rent(count);
        try
        {
            var missingCount = 0;
            for (var i = 0; i < count; i++)
            {
                var block = firstBlock + i;
                _dirty.TryGetValue(block, out var dirty);
                var target = result.AsSpan(i * bs, bs);
                var hit = dirty.Segment is null
                    ? cache.TryRead(VolumeId, block, target, out _)
                    : !dirty.Zero && cache.TryRead(VolumeId, block, dirty.Lsn, target);
                missing[i] = !hit;
                missingCount += hit ? 0 : 1;
            }

            if (missingCount > 0 && _peer is not null)
            {
                await ReadFromPeerAsync(firstBlock, count, missing, result);
            }

            var status = missingCount == 0 ? IoStatus.Ok : await ReadFromStorageAsync(firstBlock, count, missing, result);
            return (status, status == IoStatus.Ok ? result : []);
        }
        finally
        {
            ArrayPool<bool>.Shared.Return(missing);
        }
    }

    /// <summary>Fills the blocks still marked missing from the log mirrors or the extent replicas.</summary>
    private async Task<IoStatus> ReadFromStorageAsync(long firstBlock, int count, bool[] missing, byte[] result)
    {
        var bs = BlockSizeBytes;
        var counters = cache.Counters;
        var block = firstBlock;
        var end = firstBlock + count;
        while (block < end)
        {
            if (!missing[block - firstBlock])
            {
                block++;
                continue;
            }

            _dirty.TryGetValue(block, out var dirty);
            if (dirty.Segment is null)
            {
                var cleanEnd = CleanRunEnd(block, end, missing, firstBlock);
                if (!await ReadExtentsIntoAsync(block, (int)(cleanEnd - block), default, result, firstBlock))
                {
                    return IoStatus.IoError;
                }

                block = cleanEnd;
                continue;
            }

            // A run of following blocks written by the same record is fetched in one call, as long as each entry is as
            // settled as the first: a record's blocks are confirmed one read at a time, and a block still unconfirmed may
            // have been overwritten by a newer write already destaged (only the extents know). Read from the log with a
            // confirmed neighbour, it came back one version old.
            var runEnd = block + 1;
            while (runEnd < end && missing[runEnd - firstBlock] && _dirty.TryGetValue(runEnd, out var next)
                && next.Lsn == dirty.Lsn && next.Recovered == dirty.Recovered)
            {
                runEnd++;
            }

            if (dirty.Recovered)
            {
                // Rebuilt at attach from a segment that may have been overtaken by a newer one already destaged (and
                // gone from the catalogue): only the extents can tell. Until one replica answers, the log's copy may
                // be older than an acknowledged write, so the read fails rather than serve it.
                var (served, confirmed) = await SettleRecoveredAsync(block, (int)(runEnd - block), dirty.Lsn, result, firstBlock);
                if (served > 0)
                {
                    block += served;
                    continue;
                }

                if (confirmed == 0)
                {
                    return IoStatus.IoError;
                }

                runEnd = block + confirmed;
            }

            var runBlocks = (int)(runEnd - block);

            if (dirty.Zero)
            {
                result.AsSpan((int)((block - firstBlock) * bs), runBlocks * bs).Clear();
                Interlocked.Add(ref counters.ZeroReadCount, runBlocks);
                block = runEnd;
                continue;
            }

            var runLength = runBlocks * bs;
            var started = Stopwatch.GetTimestamp();
            var reply = await ReadFromMirrorsAsync(dirty, (ulong)(block * bs), runLength);
            counters.LogLatency.RecordSince(started);
            if (reply.Status == MirrorStatus.Gone)
            {
                // No mirror served the LSN and one said Gone (destaged there, or never given that record): the extents
                // are tried, and only a version at least this new is taken; otherwise the read fails rather than go back.
                if (!await ReadExtentsIntoAsync(block, runBlocks, dirty.Lsn, result, firstBlock))
                {
                    return IoStatus.IoError;
                }

                ForgetDirty(block, runEnd, dirty.Lsn);
                block = runEnd;
                continue;
            }

            if (reply.Status != MirrorStatus.Ok)
            {
                return IoStatus.IoError;
            }

            Interlocked.Add(ref counters.LogReadCount, runBlocks);
            Interlocked.Add(ref counters.LogReadByteCount, runLength);
            reply.Data!.CopyTo(result.AsMemory((int)((block - firstBlock) * bs), runLength));
            for (var b = block; b < runEnd; b++)
            {
                // Only while this version is still the newest: a write that completed during the read (cached, then
                // perhaps evicted) would otherwise be hidden under this older copy once its own entry is pruned.
                if (_dirty.TryGetValue(b, out var now) && now.Lsn == dirty.Lsn)
                {
                    cache.Put(VolumeId, b, dirty.Lsn, reply.Data.AsSpan((int)((b - block) * bs), bs));
                }
            }

            block = runEnd;
        }

        return IoStatus.Ok;
    }

    /// <summary>The end of a run of missing blocks with no dirty entry, within one extent (read from the extents in one call).</summary>
    private long CleanRunEnd(long block, long end, bool[] missing, long firstBlock)
    {
        var extentEnd = ((block / _placement!.BlocksPerExtent) + 1) * _placement.BlocksPerExtent;
        var runEnd = block + 1;
        while (runEnd < end && runEnd < extentEnd && missing[runEnd - firstBlock] && !_dirty.ContainsKey(runEnd))
        {
            runEnd++;
        }

        return runEnd;
    }

    /// <summary>
    /// Decides the leading blocks of a run of recovered dirty entries at <paramref name="lsn"/> by asking an extent
    /// replica. Blocks whose extent version is at least <paramref name="lsn"/> are served from it (<c>Served</c>); an
    /// entry is forgotten only when that version is newer (then it is in both replicas), and kept, confirmed, when it
    /// is this very record (one replica having it says nothing of the other). Otherwise the leading blocks whose extent
    /// version is older keep their entries, now confirmed current (<c>Confirmed</c>): every newer version would either
    /// have a dirty entry of its own or, being destaged, be in both replicas. Neither (both zero) when no replica
    /// answered.
    /// </summary>
    private async Task<(int Served, int Confirmed)> SettleRecoveredAsync(long block, int count, Lsn lsn, byte[] result, long resultFirstBlock)
    {
        var blocksPerExtent = _placement!.BlocksPerExtent;
        var pieceCount = (int)Math.Min(count, ((block / blocksPerExtent) + 1) * blocksPerExtent - block);
        var started = Stopwatch.GetTimestamp();
        var dropped = _dirtyDropped;
        var reply = await ReadReplicaAsync(block, pieceCount, default);
        var mayCache = dropped == _dirtyDropped;
        cache.Counters.ExtentLatency.RecordSince(started);
        if (reply is null)
        {
            return (0, 0);
        }

        var newer = 0;
        while (newer < pieceCount && reply.Blocks[newer].Lsn >= lsn)
        {
            newer++;
        }

        if (newer > 0)
        {
            TakeExtentBlocks(reply, block, newer, mayCache, result, resultFirstBlock);
            for (var i = 0; i < newer; i++)
            {
                if (!_dirty.TryGetValue(block + i, out var entry) || entry.Lsn != lsn)
                {
                    continue;
                }

                if (reply.Blocks[i].Lsn > lsn)
                {
                    // A newer write than any catalogued segment holds: it left the catalogue, so it was destaged on both
                    // mirrors, which means into both replicas. The entry is stale and the extents are safe to read.
                    _dirty.TryRemove(block + i, out _);
                    _dirtyDropped++;
                }
                else
                {
                    // This very record is in one replica, but its segment may still be on its way into the other (a
                    // mirror's destage waits for every replica): the entry stays, now confirmed, so reads keep asking for
                    // at least this LSN until the segment is pruned.
                    _dirty[block + i] = entry with { Recovered = false };
                }
            }

            return (newer, 0);
        }

        var older = 0;
        while (older < pieceCount && reply.Blocks[older].Lsn < lsn)
        {
            if (_dirty.TryGetValue(block + older, out var entry) && entry.Lsn == lsn && entry.Recovered)
            {
                _dirty[block + older] = entry with { Recovered = false };
            }

            older++;
        }

        return (0, older);
    }

    /// <summary>Drops dirty entries of a run that the extents proved destaged, unless a newer write replaced them meanwhile.</summary>
    private void ForgetDirty(long firstBlock, long endBlock, Lsn lsn)
    {
        for (var b = firstBlock; b < endBlock; b++)
        {
            if (_dirty.TryGetValue(b, out var entry) && entry.Lsn == lsn)
            {
                _dirty.TryRemove(b, out _);
                _dirtyDropped++;
            }
        }
    }

    private async Task<ReadReply> ReadFromMirrorsAsync(DirtyEntry dirty, ulong offsetBytes, int lengthBytes)
    {
        var last = new ReadReply(MirrorStatus.Gone, null);
        var gone = false;
        var (first, second) = ReadOrder(dirty.Segment.MirrorA, dirty.Segment.MirrorB);
        foreach (var node in new[] { first, second })
        {
            try
            {
                last = await Mirror(node, dirty.Segment.SegmentId).ReadAsync(dirty.Lsn, offsetBytes, lengthBytes);
                if (last.Status == MirrorStatus.Ok && last.Data?.Length == lengthBytes)
                {
                    ClearSuspect(node);
                    return last;
                }

                gone |= last.Status == MirrorStatus.Gone;
            }
            catch (Exception e) when (CallFailure.Is(e))
            {
                MarkSuspect(node);
                last = new ReadReply(MirrorStatus.Faulted, null);
            }
        }

        // One mirror destaged the segment: the extents hold this version (the caller accepts only an LSN at least as
        // new), whatever the other mirror answered.
        return gone ? new ReadReply(MirrorStatus.Gone, null) : last;
    }
}
