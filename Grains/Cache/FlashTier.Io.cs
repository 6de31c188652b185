using System.Buffers;
using System.Diagnostics;
using Converge.Log;

namespace Converge.Grains.Cache;

internal sealed partial class FlashTier
{
    /// <summary>
    /// Reads a block from flash into a buffer rented from <see cref="ArrayPool{T}.Shared"/> (the caller returns it),
    /// data at <see cref="FlashSlot.HeaderBytes"/>. Verified: a slot failing its checks is dropped and reads as a miss.
    /// The ticket lets <see cref="StillHolds"/> prove the slot was not reused or dropped since.
    /// </summary>
    public bool TryRead(in CacheKey key, bool anyLsn, Lsn expected, out Lsn lsn, out FlashTicket ticket, out byte[] slot)
    {
        lsn = default;
        ticket = default;
        slot = [];
        Mapping mapping;
        uint generation;
        lock (Lock)
        {
            if (_disabled)
            {
                return false;
            }

            if (_pending.TryGetValue(key, out var queued))
            {
                // Evicted from RAM and not written yet: the queued copy is the newest flash knows of.
                if (!anyLsn && queued.Lsn != expected)
                {
                    return false;
                }

                slot = ArrayPool<byte>.Shared.Rent(SlotBytes);
                queued.Data.AsSpan(0, BlockBytes).CopyTo(slot.AsSpan(FlashSlot.HeaderBytes));
                (lsn, ticket) = (queued.Lsn, new FlashTicket(-1, 0, queued));
                return true;
            }

            if (!_index.TryGetValue(key, out mapping) || (!anyLsn && mapping.Lsn != expected))
            {
                return false;
            }

            generation = _slotGenerations[mapping.Slot];
        }

        var started = Stopwatch.GetTimestamp();
        var buffer = ArrayPool<byte>.Shared.Rent(SlotBytes);
        int read;
        try
        {
            read = _file.Read((long)mapping.Slot * SlotBytes, buffer.AsSpan(0, SlotBytes));
        }
        catch (IOException e)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            Disable(e);
            return false;
        }

        _instruments?.FlashReadDuration.Record(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        var status = read == SlotBytes ? FlashSlot.Check(buffer.AsSpan(0, SlotBytes), key, mapping.Lsn) : FlashSlotStatus.Corrupt;
        if (status == FlashSlotStatus.Ok)
        {
            (lsn, ticket, slot) = (mapping.Lsn, new FlashTicket(mapping.Slot, generation, null), buffer);
            return true;
        }

        ArrayPool<byte>.Shared.Return(buffer);
        lock (Lock)
        {
            // Unchanged generation and mapping: no writer touched the slot while it was read, so the bytes are bad.
            if (_slotGenerations[mapping.Slot] == generation && _index.TryGetValue(key, out var now) && now == mapping)
            {
                _index.Remove(key);
                _slotLive[mapping.Slot] = false;
                Interlocked.Increment(ref _counters.CorruptSlotCount);
            }
        }

        return false;
    }

    /// <summary>Whether the slot read under <paramref name="ticket"/> still holds the block. Caller holds <see cref="Lock"/>.</summary>
    public bool StillHolds(in CacheKey key, Lsn lsn, FlashTicket ticket)
    {
        if (_disabled)
        {
            return false;
        }

        if (ticket.Queued is not null)
        {
            // Still queued, or written since: either way flash still holds exactly this version.
            return (_pending.TryGetValue(key, out var queued) && ReferenceEquals(queued, ticket.Queued)) ||
                (!_pending.ContainsKey(key) && _index.TryGetValue(key, out var written) && written.Lsn == lsn);
        }

        return _slotGenerations[ticket.Slot] == ticket.Generation && _index.TryGetValue(key, out var m) && m.Slot == ticket.Slot;
    }

    private async Task WriteLoopAsync()
    {
        var slot = new byte[SlotBytes];
        await foreach (var demotion in _queue.Reader.ReadAllAsync())
        {
            if (demotion.Barrier is not null)
            {
                demotion.Barrier.TrySetResult();
                continue;
            }

            try
            {
                Write(demotion, slot);
            }
            finally
            {
                lock (Lock)
                {
                    // Readers copy a queued block under the lock: once it is out of the map its buffer is free.
                    if (_pending.TryGetValue(demotion.Key, out var current) && current == demotion)
                    {
                        _pending.Remove(demotion.Key);
                    }
                }

                _buffers.Return(demotion.Data);
            }
        }
    }

    private void Write(Demotion demotion, byte[] slotBuffer)
    {
        int slot;
        uint generation;
        lock (Lock)
        {
            if (_disabled || !_pending.TryGetValue(demotion.Key, out var current) || current != demotion)
            {
                return; // invalidated, superseded or dropped with its volume while queued
            }

            slot = (int)_nextSlot;
            _nextSlot = (_nextSlot + 1) % SlotCount;
            if (_slotLive[slot])
            {
                var previous = _slotKeys[slot];
                if (_index.TryGetValue(previous, out var mapping) && mapping.Slot == slot)
                {
                    _index.Remove(previous);
                    Interlocked.Increment(ref _counters.FlashEvictionCount);
                }

                _slotLive[slot] = false;
            }

            // Readers that looked the slot up before this point see the generation change and call it a miss.
            generation = ++_slotGenerations[slot];
        }

        FlashSlot.Encode(demotion.Key, demotion.Lsn, demotion.Data.AsSpan(0, BlockBytes), slotBuffer);
        var started = Stopwatch.GetTimestamp();
        try
        {
            _file.Write((long)slot * SlotBytes, slotBuffer);
        }
        catch (IOException e)
        {
            Disable(e);
            return;
        }

        _instruments?.FlashWriteDuration.Record(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        lock (Lock)
        {
            if (_disabled || _slotGenerations[slot] != generation || !_pending.TryGetValue(demotion.Key, out var current) || current != demotion)
            {
                return;
            }

            _pending.Remove(demotion.Key);
            if (_index.Remove(demotion.Key, out var old))
            {
                _slotLive[old.Slot] = false;
            }

            _index[demotion.Key] = new Mapping(slot, demotion.Lsn);
            _slotKeys[slot] = demotion.Key;
            _slotLive[slot] = true;
            Interlocked.Increment(ref _counters.FlashWriteCount);
        }
    }
}

/// <summary>Which slot, in which generation, a flash read came from; or the queued demotion it was copied from.</summary>
internal readonly record struct FlashTicket(int Slot, uint Generation, object? Queued);
