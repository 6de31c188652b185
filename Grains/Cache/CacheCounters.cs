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
    internal long RamHitByteCount;
    internal long FlashHitByteCount;
    internal long PeerHitCount;
    internal long PeerHitByteCount;
    internal long PeerRejectedCount;
    internal long PeerCallCount;
    internal long PeerFailureCount;
    internal long PeerServedCount;
    internal long LogReadCount;
    internal long LogReadByteCount;
    internal long ExtentReadCount;
    internal long ExtentReadByteCount;
    internal long ZeroReadCount;
    internal long DirectReadCount;

    /// <summary>NBD reads the gateway answered from RAM itself, without the volume controller (their blocks count as RAM hits too).</summary>
    public long DirectReads => Volatile.Read(ref DirectReadCount);

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

    /// <summary>Block bytes served from RAM.</summary>
    public long RamHitBytes => Volatile.Read(ref RamHitByteCount);

    /// <summary>Block bytes served from flash.</summary>
    public long FlashHitBytes => Volatile.Read(ref FlashHitByteCount);

    /// <summary>Blocks this node's reads took from the previous holder's cache (proven current).</summary>
    public long PeerHits => Volatile.Read(ref PeerHitCount);

    public long PeerHitBytes => Volatile.Read(ref PeerHitByteCount);

    /// <summary>Blocks a peer sent that could not be proven current (read from storage instead).</summary>
    public long PeerRejected => Volatile.Read(ref PeerRejectedCount);

    /// <summary>Peer read calls made (one per run of missing blocks).</summary>
    public long PeerCalls => Volatile.Read(ref PeerCallCount);

    /// <summary>Peer read calls that failed or timed out (their blocks came from storage).</summary>
    public long PeerFailures => Volatile.Read(ref PeerFailureCount);

    /// <summary>Blocks this node's cache sent to another compute node's peer reads.</summary>
    public long PeerServed => Volatile.Read(ref PeerServedCount);

    /// <summary>Blocks read from a storage node's log (a mirror of a segment not yet destaged).</summary>
    public long LogReads => Volatile.Read(ref LogReadCount);

    public long LogReadBytes => Volatile.Read(ref LogReadByteCount);

    /// <summary>Blocks read from extent replicas (holes included).</summary>
    public long ExtentReads => Volatile.Read(ref ExtentReadCount);

    public long ExtentReadBytes => Volatile.Read(ref ExtentReadByteCount);

    /// <summary>Blocks read as zeros because they were never written or were zeroed (thin); a subset of the storage reads or answered from the dirty map.</summary>
    public long ZeroReads => Volatile.Read(ref ZeroReadCount);

    /// <summary>Blocks read from storage, log or extents.</summary>
    public long StorageReads => LogReads + ExtentReads;

    /// <summary>Per-hit time of RAM hits (lookup and copy).</summary>
    public LatencyHistogram RamLatency { get; } = new();

    /// <summary>Per-hit time of flash hits (slot read, checks and promotion).</summary>
    public LatencyHistogram FlashLatency { get; } = new();

    /// <summary>Per-call time of peer reads (a run of blocks), failures included.</summary>
    public LatencyHistogram PeerLatency { get; } = new();

    /// <summary>Per-call time of log mirror reads.</summary>
    public LatencyHistogram LogLatency { get; } = new();

    /// <summary>Per-call time of extent replica reads.</summary>
    public LatencyHistogram ExtentLatency { get; } = new();
}
