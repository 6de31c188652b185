using System.Diagnostics;
using Converge.Log;

namespace Converge.Grains.Cache;

/// <summary>
/// One independently locked partition of the RAM tier, evicting with S3-FIFO (Yang et al., SOSP 2023): a small FIFO
/// (about 10%) where new blocks wait, a main FIFO for blocks read again while in the small one, and a ghost FIFO of
/// keys recently evicted from the small one.
/// </summary>
/// <remarks>
/// Why S3-FIFO rather than LRU, 2Q or ARC: a block device sees long one-time scans (backups, a VM copying a disk image,
/// a boot reading its image once). Under LRU such a scan flushes the hot set; S3-FIFO lets a scanned block pass only
/// through the small queue and leave with no hit, so the main queue (the hot set) is untouched. Unlike LRU, 2Q and ARC,
/// a hit only bumps a two-bit counter and never reorders a list, which keeps the hit path short and the lock held for
/// little more than the copy. ARC adapts its split better but needs four lists and list moves on every hit.
/// Every member must be called with <see cref="Lock"/> held.
/// </remarks>
internal sealed partial class RamShard
{
    private readonly Dictionary<CacheKey, RamEntry> _map = [];
    private readonly EntryQueue _small = new();
    private readonly EntryQueue _main = new();
    private readonly GhostQueue _ghost;
    private readonly IRamEvictionSink _sink;
    private readonly BlockBufferPool _buffers;

    public RamShard(long capacityBytes, double smallFraction, IRamEvictionSink sink, BlockBufferPool buffers)
    {
        Debug.Assert(capacityBytes > 0, "a shard holds something");
        CapacityBytes = capacityBytes;
        SmallTargetBytes = Math.Max(1, (long)(capacityBytes * smallFraction));
        _ghost = new GhostQueue((int)Math.Clamp((capacityBytes - SmallTargetBytes) / 4096, 16, int.MaxValue / 4));
        _sink = sink;
        _buffers = buffers;
    }

    public Lock Lock { get; } = new();

    public long CapacityBytes { get; }

    public long SmallTargetBytes { get; }

    public long Bytes => _small.Bytes + _main.Bytes;

    public int Count => _map.Count;

    public RamEntry? Find(in CacheKey key) => _map.GetValueOrDefault(key);

    /// <summary>Copies the block into <paramref name="destination"/> when it is cached and the LSN fits; counts the access.</summary>
    public bool TryCopy(in CacheKey key, bool anyLsn, Lsn expected, Span<byte> destination, out Lsn lsn)
    {
        if (!_map.TryGetValue(key, out var entry) || (!anyLsn && entry.Lsn != expected) || entry.LengthBytes != destination.Length)
        {
            lsn = default;
            return false;
        }

        entry.Data.AsSpan(0, entry.LengthBytes).CopyTo(destination);
        if (entry.Frequency < RamEntry.MaxFrequency)
        {
            entry.Frequency++;
        }

        lsn = entry.Lsn;
        return true;
    }

    /// <summary>Replaces the data of a cached block with a newer version.</summary>
    public void Update(RamEntry entry, Lsn lsn, ReadOnlySpan<byte> data)
    {
        Debug.Assert(lsn > entry.Lsn, "an update only ever moves a block forward");
        if (data.Length == entry.LengthBytes)
        {
            data.CopyTo(entry.Data);
            entry.Lsn = lsn;
            return;
        }

        Remove(entry.Key);
        Insert(entry.Key, lsn, data);
    }

    /// <summary>Caches a block not cached yet, evicting (and demoting) as needed to stay within the capacity.</summary>
    public bool Insert(in CacheKey key, Lsn lsn, ReadOnlySpan<byte> data)
    {
        Debug.Assert(!_map.ContainsKey(key), "insert of a key already cached");
        if (data.Length > CapacityBytes || data.IsEmpty)
        {
            return false;
        }

        var buffer = _buffers.Rent(data.Length);
        MakeRoom(buffer.Length);
        data.CopyTo(buffer);
        var entry = new RamEntry(key, lsn, buffer, data.Length);
        if (_ghost.Remove(key))
        {
            // Evicted from the small queue not long ago and wanted again: it has proven reuse.
            entry.InMain = true;
            _main.PushNewest(entry);
        }
        else
        {
            _small.PushNewest(entry);
        }

        _map.Add(key, entry);
        Debug.Assert(Bytes <= CapacityBytes, "shard over capacity after insert");
        return true;
    }

    /// <summary>Drops a block without demoting it (it is stale or its volume is gone).</summary>
    public bool Remove(in CacheKey key)
    {
        if (!_map.Remove(key, out var entry))
        {
            return false;
        }

        (entry.InMain ? _main : _small).Remove(entry);
        _buffers.Return(entry.Data);
        return true;
    }

    /// <summary>Drops every block of a volume; O(blocks in the shard), for the rare change of a volume's holder.</summary>
    public int RemoveVolume(Guid volumeId)
    {
        List<CacheKey>? victims = null;
        foreach (var key in _map.Keys)
        {
            if (key.VolumeId == volumeId)
            {
                (victims ??= []).Add(key);
            }
        }

        if (victims is null)
        {
            return 0;
        }

        foreach (var key in victims)
        {
            Remove(key);
        }

        _ghost.RemoveVolume(volumeId);
        return victims.Count;
    }
}

/// <summary>Receives blocks leaving RAM under the shard lock; returns true when it took ownership of the buffer.</summary>
internal interface IRamEvictionSink
{
    bool OnEvicted(RamEntry entry);
}
