using System.Diagnostics.Metrics;

namespace Converge.Grains.Cache;

/// <summary>
/// Metrics of a compute node's block cache and read path, meter <c>Converge.Cache</c>. Counts are observed from
/// <see cref="CacheCounters"/> when collected, so the read path pays only its Interlocked bumps; tag <c>tier</c> is
/// <c>ram</c>, <c>flash</c>, <c>peer</c>, <c>log</c> or <c>extent</c>. Latency percentiles come from the counters'
/// bounded histograms.
/// </summary>
public sealed class CacheInstruments : IDisposable
{
    public const string MeterName = "Converge.Cache";

    private static readonly KeyValuePair<string, object?> Ram = new("tier", "ram");
    private static readonly KeyValuePair<string, object?> Flash = new("tier", "flash");
    private static readonly KeyValuePair<string, object?> Peer = new("tier", "peer");
    private static readonly KeyValuePair<string, object?> Log = new("tier", "log");
    private static readonly KeyValuePair<string, object?> Extent = new("tier", "extent");

    private readonly Meter _meter;

    public CacheInstruments(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        FlashReadDuration = _meter.CreateHistogram<double>("converge.cache.flash.read.duration", "us", "Duration of one flash slot read");
        FlashWriteDuration = _meter.CreateHistogram<double>("converge.cache.flash.write.duration", "us", "Duration of one flash slot write");
    }

    public Histogram<double> FlashReadDuration { get; }

    public Histogram<double> FlashWriteDuration { get; }

    /// <summary>Publishes the totals of one cache; called once by the cache that owns these instruments.</summary>
    internal void Observe(BlockCache cache)
    {
        var c = cache.Counters;
        _meter.CreateObservableCounter("converge.cache.hits", () => new[] { new Measurement<long>(c.RamHits, Ram), new Measurement<long>(c.FlashHits, Flash), new Measurement<long>(c.PeerHits, Peer) }, "{read}", "Reads served by a tier");
        _meter.CreateObservableCounter("converge.read.blocks", () => new[]
        {
            new Measurement<long>(c.RamHits, Ram), new Measurement<long>(c.FlashHits, Flash), new Measurement<long>(c.PeerHits, Peer),
            new Measurement<long>(c.LogReads, Log), new Measurement<long>(c.ExtentReads, Extent),
        }, "{block}", "Blocks read, by the tier that served them");
        _meter.CreateObservableCounter("converge.read.bytes", () => new[]
        {
            new Measurement<long>(c.RamHitBytes, Ram), new Measurement<long>(c.FlashHitBytes, Flash), new Measurement<long>(c.PeerHitBytes, Peer),
            new Measurement<long>(c.LogReadBytes, Log), new Measurement<long>(c.ExtentReadBytes, Extent),
        }, "By", "Block bytes read, by the tier that served them");
        _meter.CreateObservableCounter("converge.read.zero", () => c.ZeroReads, "{block}", "Blocks read as zeros (never written or zeroed)");
        _meter.CreateObservableCounter("converge.cache.peer.calls", () => c.PeerCalls, "{call}", "Peer read calls to the previous holder");
        _meter.CreateObservableCounter("converge.cache.peer.failures", () => c.PeerFailures, "{call}", "Peer read calls that failed or timed out");
        _meter.CreateObservableCounter("converge.cache.peer.rejected", () => c.PeerRejected, "{block}", "Peer blocks not provably current, read from storage");
        _meter.CreateObservableCounter("converge.cache.peer.served", () => c.PeerServed, "{block}", "Blocks this node sent to another node's peer reads");
        _meter.CreateObservableGauge("converge.read.latency.p50", () => Percentiles(c, 0.50), "us", "Median latency per tier (RAM and flash per block, others per call)");
        _meter.CreateObservableGauge("converge.read.latency.p99", () => Percentiles(c, 0.99), "us", "99th percentile latency per tier (RAM and flash per block, others per call)");
        _meter.CreateObservableCounter("converge.cache.misses", () => new[] { new Measurement<long>(c.RamMisses, Ram), new Measurement<long>(c.Misses, Flash) }, "{read}", "Reads a tier could not serve");
        _meter.CreateObservableCounter("converge.cache.evictions", () => new[] { new Measurement<long>(c.RamEvictions, Ram), new Measurement<long>(c.FlashEvictions, Flash) }, "{block}", "Blocks evicted from a tier");
        _meter.CreateObservableCounter("converge.cache.demotions", () => c.Demotions, "{block}", "RAM evictions queued for flash");
        _meter.CreateObservableCounter("converge.cache.demotions.dropped", () => c.DemotionsDropped, "{block}", "RAM evictions dropped because the flash queue was full");
        _meter.CreateObservableCounter("converge.cache.promotions", () => c.Promotions, "{block}", "Flash hits copied back to RAM");
        _meter.CreateObservableCounter("converge.cache.flash.corrupt", () => c.CorruptSlots, "{slot}", "Flash slots failing their checksum on read");
        _meter.CreateObservableCounter("converge.cache.flash.errors", () => c.FlashErrors, "{error}", "I/O errors on the flash cache file");
        _meter.CreateObservableGauge("converge.cache.bytes", () => new[] { new Measurement<long>(cache.RamBytes, Ram), new Measurement<long>(cache.FlashBytes, Flash) }, "By", "Block bytes held by a tier");
    }

    public void Dispose() => _meter.Dispose();

    private static Measurement<double>[] Percentiles(CacheCounters c, double quantile) =>
    [
        new(c.RamLatency.PercentileMicroseconds(quantile), Ram),
        new(c.FlashLatency.PercentileMicroseconds(quantile), Flash),
        new(c.PeerLatency.PercentileMicroseconds(quantile), Peer),
        new(c.LogLatency.PercentileMicroseconds(quantile), Log),
        new(c.ExtentLatency.PercentileMicroseconds(quantile), Extent),
    ];
}
