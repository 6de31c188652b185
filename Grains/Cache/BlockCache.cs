using System.Collections.Concurrent;
using Converge.Log;

namespace Converge.Grains.Cache;

/// <summary>
/// The compute node's RAM block cache, shared by every volume controller on the node and outliving their activations.
/// Each block carries the LSN of the write it holds, so a reader can prove it current against the dirty map.
/// Bounded by <see cref="CapacityBlocks"/>; eviction is first-in first-out (a scan-resistant policy is future work).
/// </summary>
public sealed class BlockCache(int capacityBlocks)
{
    private readonly ConcurrentDictionary<(Guid Volume, long Block), Entry> _entries = new();
    private readonly ConcurrentQueue<(Guid Volume, long Block)> _order = new();

    public int CapacityBlocks { get; } = capacityBlocks;

    public long Hits;
    public long Misses;

    public int Count => _entries.Count;

    /// <summary>The cached block and its LSN, if present. The array is shared and must not be modified.</summary>
    public bool TryGet(Guid volumeId, long block, out Lsn lsn, out byte[] data)
    {
        if (_entries.TryGetValue((volumeId, block), out var entry))
        {
            Interlocked.Increment(ref Hits);
            (lsn, data) = (entry.Lsn, entry.Data);
            return true;
        }

        Interlocked.Increment(ref Misses);
        (lsn, data) = (default, []);
        return false;
    }

    /// <summary>Caches a copy of one block written or read at <paramref name="lsn"/>; an older LSN never replaces a newer one.</summary>
    public void Put(Guid volumeId, long block, Lsn lsn, ReadOnlySpan<byte> data)
    {
        var copy = data.ToArray();
        var key = (volumeId, block);
        var added = false;
        _entries.AddOrUpdate(
            key,
            _ =>
            {
                added = true;
                return new Entry(lsn, copy);
            },
            (_, old) => old.Lsn > lsn ? old : new Entry(lsn, copy));
        if (added)
        {
            _order.Enqueue(key);
            while (_entries.Count > CapacityBlocks && _order.TryDequeue(out var victim))
            {
                _entries.TryRemove(victim, out _);
            }
        }
    }

    public void Invalidate(Guid volumeId, long block) => _entries.TryRemove((volumeId, block), out _);

    /// <summary>Drops every block of a volume (its holder changed while this node was not watching).</summary>
    public void DropVolume(Guid volumeId)
    {
        foreach (var key in _entries.Keys)
        {
            if (key.Volume == volumeId)
            {
                _entries.TryRemove(key, out _);
            }
        }
    }

    private sealed record Entry(Lsn Lsn, byte[] Data);
}
