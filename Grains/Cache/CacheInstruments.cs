using System.Diagnostics.Metrics;

namespace Converge.Grains.Cache;

/// <summary>
/// Metrics of a compute node's block cache, meter <c>Converge.Cache</c>. Counts are observed from
/// <see cref="CacheCounters"/> when collected, so the hit path pays nothing for them; tag <c>tier</c> is <c>ram</c> or
/// <c>flash</c>. Only flash I/O is timed: a RAM hit is a dictionary lookup and a copy, cheaper than reading a clock twice.
/// </summary>
public sealed class CacheInstruments : IDisposable
{
    public const string MeterName = "Converge.Cache";

    private static readonly KeyValuePair<string, object?> Ram = new("tier", "ram");
    private static readonly KeyValuePair<string, object?> Flash = new("tier", "flash");

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
        _meter.CreateObservableCounter("converge.cache.hits", () => new[] { new Measurement<long>(c.RamHits, Ram), new Measurement<long>(c.FlashHits, Flash) }, "{read}", "Reads served by a tier");
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
}
