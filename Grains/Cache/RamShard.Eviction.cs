using System.Diagnostics;

namespace Converge.Grains.Cache;

internal sealed partial class RamShard
{
    private void MakeRoom(int incomingBytes)
    {
        // Each step evicts a block, promotes one from small to main, or takes a frequency bit from a main block
        // (at most MaxFrequency per block), so this bound is never reached unless the queues are inconsistent.
        var stepsLeft = (long)(_map.Count + 1) * (RamEntry.MaxFrequency + 2);
        while (Bytes + incomingBytes > CapacityBytes)
        {
            if (stepsLeft-- <= 0 || _map.Count == 0)
            {
                throw new InvalidOperationException($"RAM cache shard cannot make room: {Bytes} bytes in {_map.Count} blocks, capacity {CapacityBytes}");
            }

            if (_small.Count > 0 && (_small.Bytes >= SmallTargetBytes || _main.Count == 0))
            {
                EvictFromSmall();
            }
            else
            {
                EvictFromMain();
            }
        }
    }

    private void EvictFromSmall()
    {
        var victim = _small.Oldest!;
        _small.Remove(victim);
        if (victim.Frequency > 0)
        {
            // Read again while on probation: keep it, in the main queue, with its history reset.
            victim.Frequency = 0;
            victim.InMain = true;
            _main.PushNewest(victim);
            return;
        }

        _ghost.Add(victim.Key);
        Drop(victim);
    }

    private void EvictFromMain()
    {
        var victim = _main.Oldest!;
        _main.Remove(victim);
        if (victim.Frequency > 0)
        {
            victim.Frequency--;
            _main.PushNewest(victim);
            return;
        }

        Drop(victim);
    }

    private void Drop(RamEntry victim)
    {
        var removed = _map.Remove(victim.Key);
        Debug.Assert(removed, "evicted entry was not in the map");
        if (!_sink.OnEvicted(victim))
        {
            _buffers.Return(victim.Data);
        }
    }
}
