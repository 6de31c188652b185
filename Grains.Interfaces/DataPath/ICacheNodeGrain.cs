using Converge.Log;

namespace Converge.DataPath;

/// <summary>Median and 99th percentile of one tier's latency, in microseconds (bucket upper bounds), over <see cref="Samples"/>.</summary>
[GenerateSerializer, Immutable, Alias("Converge.TierLatency")]
public readonly record struct TierLatency(
    [property: Id(0)] long Samples,
    [property: Id(1)] double P50Us,
    [property: Id(2)] double P99Us);

/// <summary>
/// A compute node's read-path counters since its silo started, in blocks and block bytes. Each block a controller
/// reads is counted once, by the tier that served it: RAM, flash, peer (the previous holder's cache), log or extents.
/// <see cref="Misses"/> counts blocks neither local tier held (then served by a peer or storage); zero reads are blocks
/// answered as zeros (thin holes and zeroed ranges) and are also counted under the storage tier that answered, if any.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.CacheNodeStats")]
public sealed record CacheNodeStats(
    [property: Id(0)] string Node,
    [property: Id(1)] long RamHits,
    [property: Id(2)] long RamHitBytes,
    [property: Id(3)] long FlashHits,
    [property: Id(4)] long FlashHitBytes,
    [property: Id(5)] long PeerHits,
    [property: Id(6)] long PeerHitBytes,
    [property: Id(7)] long LogReads,
    [property: Id(8)] long LogReadBytes,
    [property: Id(9)] long ExtentReads,
    [property: Id(10)] long ExtentReadBytes,
    [property: Id(11)] long ZeroReads,
    [property: Id(12)] long Misses,
    [property: Id(13)] long RamEvictions,
    [property: Id(14)] long FlashEvictions,
    [property: Id(15)] long PeerRejected,
    [property: Id(16)] long PeerCalls,
    [property: Id(17)] long PeerFailures,
    [property: Id(18)] long PeerServed,
    [property: Id(19)] long RamBytes,
    [property: Id(20)] long FlashBytes,
    [property: Id(21)] TierLatency RamLatency,
    [property: Id(22)] TierLatency FlashLatency,
    [property: Id(23)] TierLatency PeerLatency,
    [property: Id(24)] TierLatency LogLatency,
    [property: Id(25)] TierLatency ExtentLatency,
    [property: Id(26)] long DirectReads = 0)
{
    /// <summary>Blocks read from storage (log and extents).</summary>
    public long StorageReads => LogReads + ExtentReads;

    /// <summary>
    /// The share of block reads each tier answered since <paramref name="earlier"/>, e.g. "RAM cache 75.0%, log 25.0%";
    /// empty when nothing was read.
    /// </summary>
    public string TierSharesSince(CacheNodeStats earlier)
    {
        (string Tier, long Blocks)[] tiers =
        [
            ("RAM cache", RamHits - earlier.RamHits),
            ("flash cache", FlashHits - earlier.FlashHits),
            ("peer cache", PeerHits - earlier.PeerHits),
            ("log", LogReads - earlier.LogReads),
            ("extents", ExtentReads - earlier.ExtentReads),
        ];
        var total = tiers.Sum(t => t.Blocks);
        return total <= 0 ? "" : string.Join(", ", tiers.Where(t => t.Blocks > 0)
            .Select(t => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{t.Tier} {100.0 * t.Blocks / total:0.0}%")));
    }
}

/// <summary>
/// Blocks of one volume a compute node holds in its cache, for another node's peer read. <see cref="Data"/> holds
/// <c>count</c> blocks in order; a block the node lacks has a default <see cref="Lsns"/> entry (epoch 0, which no
/// write ever carries) and zeros in <see cref="Data"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.PeerBlocksReply")]
public sealed record PeerBlocksReply(
    [property: Id(0)] byte[] Data,
    [property: Id(1)] Lsn[] Lsns)
{
    public static bool IsMissing(Lsn lsn) => lsn.Epoch == 0;
}

/// <summary>
/// The cache of one compute node, keyed <c>compute-N/cache</c> (<see cref="Key"/>) and pinned there. Serves peer reads
/// from the node's cache (never from storage) to the next holder of a volume, and exposes the node's read-path
/// counters; eviction is for tests and operators (<c>converge cache drop</c>).
/// </summary>
[Alias("Converge.ICacheNodeGrain")]
public interface ICacheNodeGrain : IGrainWithStringKey
{
    /// <summary>The grain key's part after the node name.</summary>
    public const string KeySuffix = "cache";

    /// <summary>The most blocks one peer read may ask for (8 MiB of 4 KiB blocks).</summary>
    public const int MaxPeerReadBlocks = 2048;

    [Alias("GetStats"), ResponseTimeout("00:00:05")]
    Task<CacheNodeStats> GetStatsAsync();

    /// <summary>Drops the blocks covering [offset, offset+length) of the volume from both tiers; returns blocks dropped (asked for).</summary>
    [Alias("EvictName"), ResponseTimeout("00:00:10")]
    Task<long> EvictAsync(string volumeName, long offsetBytes, long lengthBytes);

    [Alias("EvictId"), ResponseTimeout("00:00:10")]
    Task<long> EvictAsync(Guid volumeId, int blockSizeBytes, long offsetBytes, long lengthBytes);

    /// <summary>Drops every block of the volume from both tiers of this node.</summary>
    [Alias("EvictVolumeName"), ResponseTimeout("00:00:10")]
    Task EvictVolumeAsync(string volumeName);

    [Alias("EvictVolumeId"), ResponseTimeout("00:00:10")]
    Task EvictVolumeAsync(Guid volumeId);

    /// <summary>
    /// The blocks [firstBlock, firstBlock+count) of the volume this node's cache holds, each with the LSN it holds;
    /// never touches storage. The caller proves each block current before using it (docs/cache.md).
    /// </summary>
    [Alias("PeerRead"), ResponseTimeout("00:00:00.400")]
    Task<PeerBlocksReply> PeerReadAsync(Guid volumeId, int blockSizeBytes, long firstBlock, int count);

    public static string Key(string node) => node + "/" + KeySuffix;
}
