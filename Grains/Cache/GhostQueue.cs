namespace Converge.Grains.Cache;

/// <summary>
/// Keys (no data) recently evicted from S3-FIFO's small queue, bounded by count. A key found here on insert goes straight
/// to the main queue. Removal leaves a stale record in the FIFO, skipped when it reaches the front.
/// </summary>
internal sealed class GhostQueue(int capacity)
{
    private readonly Dictionary<CacheKey, long> _keys = [];
    private readonly Queue<(CacheKey Key, long Stamp)> _order = new();
    private long _stamp;

    public int Count => _keys.Count;

    public void Add(in CacheKey key)
    {
        var stamp = ++_stamp;
        _keys[key] = stamp;
        _order.Enqueue((key, stamp));
        while (_keys.Count > capacity || _order.Count > 2 * capacity)
        {
            var (old, oldStamp) = _order.Dequeue();
            if (_keys.TryGetValue(old, out var current) && current == oldStamp)
            {
                _keys.Remove(old);
            }
        }
    }

    public bool Remove(in CacheKey key) => _keys.Remove(key);

    public void RemoveVolume(Guid volumeId)
    {
        List<CacheKey>? victims = null;
        foreach (var key in _keys.Keys)
        {
            if (key.VolumeId == volumeId)
            {
                (victims ??= []).Add(key);
            }
        }

        foreach (var key in victims ?? [])
        {
            _keys.Remove(key);
        }
    }
}
