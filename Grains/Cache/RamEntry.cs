using Converge.Log;

namespace Converge.Grains.Cache;

/// <summary>
/// One block held in RAM. Owned by exactly one <see cref="RamShard"/> and touched only under its lock. <see cref="Data"/>
/// is exactly the block's length, taken from the cache's <see cref="BlockBufferPool"/>, and goes back to it (through the
/// flash demotion queue when demoted) when the entry leaves the shard.
/// </summary>
internal sealed class RamEntry(CacheKey key, Lsn lsn, byte[] data, int lengthBytes)
{
    /// <summary>Saturating access count of S3-FIFO: two bits are enough to tell one-hit blocks from hot ones.</summary>
    public const int MaxFrequency = 3;

    public CacheKey Key { get; } = key;

    public Lsn Lsn { get; set; } = lsn;

    public byte[] Data { get; set; } = data;

    public int LengthBytes { get; set; } = lengthBytes;

    public int Frequency { get; set; }

    public bool InMain { get; set; }

    public RamEntry? Newer { get; set; }

    public RamEntry? Older { get; set; }
}

/// <summary>An intrusive FIFO of entries (O(1) push, pop and removal from the middle), with its byte total.</summary>
internal sealed class EntryQueue
{
    public RamEntry? Newest { get; private set; }

    public RamEntry? Oldest { get; private set; }

    public int Count { get; private set; }

    public long Bytes { get; private set; }

    public void PushNewest(RamEntry entry)
    {
        System.Diagnostics.Debug.Assert(entry.Newer is null && entry.Older is null, "entry already queued");
        entry.Older = Newest;
        if (Newest is not null)
        {
            Newest.Newer = entry;
        }

        Newest = entry;
        Oldest ??= entry;
        Count++;
        Bytes += entry.Data.Length;
    }

    public void Remove(RamEntry entry)
    {
        if (entry.Newer is not null)
        {
            entry.Newer.Older = entry.Older;
        }
        else
        {
            Newest = entry.Older;
        }

        if (entry.Older is not null)
        {
            entry.Older.Newer = entry.Newer;
        }
        else
        {
            Oldest = entry.Newer;
        }

        entry.Newer = null;
        entry.Older = null;
        Count--;
        Bytes -= entry.Data.Length;
        System.Diagnostics.Debug.Assert(Count >= 0 && Bytes >= 0, "queue totals went negative");
    }
}
