using System.Buffers;
using System.Diagnostics;
using Converge.Log;

namespace Converge.Grains.Cache;

public sealed partial class BlockCache
{
    /// <summary>
    /// Copies the block into <paramref name="destination"/> (exactly one block long) if a tier holds it at exactly
    /// <paramref name="expected"/>; a different LSN is a miss. <paramref name="destination"/> is unchanged on a miss.
    /// </summary>
    public bool TryRead(Guid volumeId, long block, Lsn expected, Span<byte> destination) =>
        Read(new CacheKey(volumeId, block), anyLsn: false, expected, destination, out _, forPeer: false);

    /// <summary>
    /// Copies the newest cached version of the block, whatever its LSN, into <paramref name="destination"/>; the caller
    /// must judge <paramref name="lsn"/> itself. <paramref name="destination"/> is unchanged on a miss.
    /// </summary>
    public bool TryRead(Guid volumeId, long block, Span<byte> destination, out Lsn lsn) =>
        Read(new CacheKey(volumeId, block), anyLsn: true, default, destination, out lsn, forPeer: false);

    /// <summary>
    /// The RAM tier alone, for the NBD gateway's read fast path: at exactly <paramref name="lsn"/>, or any version when
    /// it is null. Counts nothing: the caller counts a read it served whole (<see cref="CountDirectRead"/>) and leaves a
    /// partial one to the controller, which counts its own hits and misses. <paramref name="destination"/> is unchanged
    /// on a miss.
    /// </summary>
    public bool TryReadRam(Guid volumeId, long block, Lsn? lsn, Span<byte> destination)
    {
        var key = new CacheKey(volumeId, block);
        var shard = ShardOf(key);
        lock (shard.Lock)
        {
            return shard.TryCopy(key, anyLsn: lsn is null, lsn ?? default, destination, out _);
        }
    }

    /// <summary>Counts one read of <paramref name="blocks"/> blocks the fast path served whole from RAM.</summary>
    public void CountDirectRead(int blocks, int bytes, long startedTimestamp)
    {
        Interlocked.Increment(ref Counters.DirectReadCount);
        Interlocked.Add(ref Counters.RamHitCount, blocks);
        Interlocked.Add(ref Counters.RamHitByteCount, bytes);
        Counters.RamLatency.RecordSince(startedTimestamp);
    }

    /// <summary>
    /// For another compute node's peer read: the newest cached version of the block and its LSN. Counted as served to a
    /// peer, not as a hit or miss of this node's own reads.
    /// </summary>
    public bool TryReadForPeer(Guid volumeId, long block, Span<byte> destination, out Lsn lsn)
    {
        var hit = Read(new CacheKey(volumeId, block), anyLsn: true, default, destination, out lsn, forPeer: true);
        if (hit)
        {
            Interlocked.Increment(ref Counters.PeerServedCount);
        }

        return hit;
    }

    /// <summary>Forgets <paramref name="count"/> blocks from <paramref name="firstBlock"/> in every tier.</summary>
    public void InvalidateRange(Guid volumeId, long firstBlock, long count)
    {
        for (var b = firstBlock; b < firstBlock + count; b++)
        {
            Invalidate(volumeId, b);
        }
    }

    /// <summary>
    /// Caches a copy of one block written or read at <paramref name="lsn"/>. An older LSN never replaces a newer one
    /// (in either tier); an equal LSN is a duplicate. The caller keeps <paramref name="data"/>.
    /// </summary>
    public void Put(Guid volumeId, long block, Lsn lsn, ReadOnlySpan<byte> data)
    {
        var key = new CacheKey(volumeId, block);
        var shard = ShardOf(key);
        lock (shard.Lock)
        {
            var entry = shard.Find(key);
            if (entry is not null)
            {
                if (entry.Lsn >= lsn)
                {
                    return;
                }

                shard.Update(entry, lsn, data);
                if (_flash is not null)
                {
                    lock (_flash.Lock)
                    {
                        _flash.Remove(key);
                    }
                }

                return;
            }

            if (_flash is not null)
            {
                lock (_flash.Lock)
                {
                    if (_flash.TryGetNewest(key, out var held))
                    {
                        if (held > lsn)
                        {
                            return;
                        }

                        if (held < lsn)
                        {
                            _flash.Remove(key);
                        }
                    }
                }
            }

            shard.Insert(key, lsn, data);
        }
    }

    /// <summary>Forgets a block in every tier (a write to it failed, or it was zeroed).</summary>
    public void Invalidate(Guid volumeId, long block)
    {
        var key = new CacheKey(volumeId, block);
        var shard = ShardOf(key);
        lock (shard.Lock)
        {
            shard.Remove(key);
            if (_flash is not null)
            {
                lock (_flash.Lock)
                {
                    _flash.Remove(key);
                }
            }
        }
    }

    /// <summary>The attachment epoch under which this node last held the volume (0: never, since this process started).</summary>
    public ulong HeldEpoch(Guid volumeId) => _heldEpochs.TryGetValue(volumeId, out var epoch) ? epoch : 0;

    /// <summary>
    /// Records that this node holds the volume at <paramref name="epoch"/>. A later attachment keeps the cache only if
    /// its previous epoch is this one: any attachment in between (another node's, or one without a controller) may
    /// have written what the cache still holds.
    /// </summary>
    public void NoteHeld(Guid volumeId, ulong epoch) => _heldEpochs[volumeId] = epoch;

    /// <summary>Drops every block of a volume from every tier (its holder changed while this node was not watching).</summary>
    public void DropVolume(Guid volumeId)
    {
        foreach (var shard in _shards)
        {
            lock (shard.Lock)
            {
                shard.RemoveVolume(volumeId);
            }
        }

        if (_flash is not null)
        {
            lock (_flash.Lock)
            {
                _flash.RemoveVolume(volumeId);
            }
        }
    }

    private bool Read(in CacheKey key, bool anyLsn, Lsn expected, Span<byte> destination, out Lsn lsn, bool forPeer)
    {
        var started = Stopwatch.GetTimestamp();
        var shard = ShardOf(key);
        lock (shard.Lock)
        {
            if (shard.TryCopy(key, anyLsn, expected, destination, out lsn))
            {
                if (!forPeer)
                {
                    Interlocked.Increment(ref Counters.RamHitCount);
                    Interlocked.Add(ref Counters.RamHitByteCount, destination.Length);
                    Counters.RamLatency.RecordSince(started);
                }

                return true;
            }
        }

        if (!forPeer)
        {
            Interlocked.Increment(ref Counters.RamMissCount);
        }

        if (_flash is null || destination.Length != _flash.BlockBytes || !_flash.TryRead(key, anyLsn, expected, out lsn, out var ticket, out var slot))
        {
            if (!forPeer)
            {
                Interlocked.Increment(ref Counters.MissCount);
            }

            lsn = default;
            return false;
        }

        try
        {
            var data = slot.AsSpan(FlashSlot.HeaderBytes, _flash.BlockBytes);
            lock (shard.Lock)
            {
                bool holds;
                lock (_flash.Lock)
                {
                    holds = _flash.StillHolds(key, lsn, ticket);
                }

                if (!holds)
                {
                    // Invalidated, superseded or reused while it was read: the bytes may no longer be current.
                    if (!forPeer)
                    {
                        Interlocked.Increment(ref Counters.MissCount);
                    }

                    lsn = default;
                    return false;
                }

                if (shard.Find(key) is null && shard.Insert(key, lsn, data))
                {
                    Interlocked.Increment(ref Counters.PromotionCount);
                }
            }

            data.CopyTo(destination);
            if (!forPeer)
            {
                Interlocked.Increment(ref Counters.FlashHitCount);
                Interlocked.Add(ref Counters.FlashHitByteCount, destination.Length);
                Counters.FlashLatency.RecordSince(started);
            }

            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(slot);
        }
    }
}
