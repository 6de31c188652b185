namespace Converge.Grains.Cache;

/// <summary>
/// Running totals of one node's cache, per tier. Plain fields bumped with <see cref="Interlocked"/> on the data path;
/// readers (tests, the stats command, <see cref="CacheInstruments"/>) see each value atomically, not a consistent set.
/// </summary>
public sealed class CacheCounters
{
    internal long RamHitCount;
    internal long RamMissCount;
    internal long RamEvictionCount;
    internal long FlashHitCount;
    internal long MissCount;
    internal long FlashEvictionCount;
    internal long FlashWriteCount;
    internal long DemotionCount;
    internal long DemotionDroppedCount;
    internal long PromotionCount;
    internal long CorruptSlotCount;
    internal long FlashErrorCount;

    /// <summary>Reads served from RAM.</summary>
    public long RamHits => Volatile.Read(ref RamHitCount);

    /// <summary>Reads RAM could not serve (flash was asked next).</summary>
    public long RamMisses => Volatile.Read(ref RamMissCount);

    /// <summary>Blocks that left RAM to make room (demoted or not).</summary>
    public long RamEvictions => Volatile.Read(ref RamEvictionCount);

    /// <summary>Reads served from the flash file (each also promotes the block to RAM).</summary>
    public long FlashHits => Volatile.Read(ref FlashHitCount);

    /// <summary>Reads no tier could serve (they went to a mirror).</summary>
    public long Misses => Volatile.Read(ref MissCount);

    /// <summary>Reads served by any tier.</summary>
    public long Hits => RamHits + FlashHits;

    /// <summary>Live flash slots overwritten by newer demotions (the flash ring wrapped).</summary>
    public long FlashEvictions => Volatile.Read(ref FlashEvictionCount);

    /// <summary>Slots written to the flash file.</summary>
    public long FlashWrites => Volatile.Read(ref FlashWriteCount);

    /// <summary>RAM evictions queued for writing to flash.</summary>
    public long Demotions => Volatile.Read(ref DemotionCount);

    /// <summary>RAM evictions not demoted because the demotion queue was full.</summary>
    public long DemotionsDropped => Volatile.Read(ref DemotionDroppedCount);

    /// <summary>Flash hits copied back into RAM.</summary>
    public long Promotions => Volatile.Read(ref PromotionCount);

    /// <summary>Flash slots whose header or data failed their CRC-32C on read: each was dropped and read as a miss.</summary>
    public long CorruptSlots => Volatile.Read(ref CorruptSlotCount);

    /// <summary>I/O errors on the flash file; the first one disables the flash tier.</summary>
    public long FlashErrors => Volatile.Read(ref FlashErrorCount);
}
