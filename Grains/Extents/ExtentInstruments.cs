using System.Diagnostics.Metrics;

namespace Converge.Grains.Extents;

/// <summary>
/// Metrics of the extent store (meter <c>Converge.Extents</c>). One instance per silo, shared by its stores;
/// every measurement is tagged with the placement group.
/// </summary>
public sealed class ExtentInstruments : IDisposable
{
    public const string MeterName = "Converge.Extents";

    private readonly Meter _meter;

    public ExtentInstruments(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        BlocksApplied = _meter.CreateCounter<long>("converge.extents.blocks.applied", "{block}", "Blocks applied because their LSN was higher than the stored one");
        BlocksSkipped = _meter.CreateCounter<long>("converge.extents.blocks.skipped", "{block}", "Blocks skipped as older or duplicate (equal LSN)");
        BytesWritten = _meter.CreateCounter<long>("converge.extents.bytes.written", "By", "Block data bytes written to extent data files");
        BlocksRead = _meter.CreateCounter<long>("converge.extents.blocks.read", "{block}", "Blocks returned by reads, thin blocks included");
        BlocksCorrupt = _meter.CreateCounter<long>("converge.extents.blocks.corrupt", "{block}", "Blocks that failed their checksum on read or verify");
        FsyncDuration = _meter.CreateHistogram<double>("converge.extents.fsync.duration", "ms", "Duration of one fdatasync of an extent data or metadata file");
        ApplyBatchBlocks = _meter.CreateHistogram<long>("converge.extents.apply.batch.blocks", "{block}", "Blocks per apply (one durability point)");
    }

    public Counter<long> BlocksApplied { get; }

    public Counter<long> BlocksSkipped { get; }

    public Counter<long> BytesWritten { get; }

    public Counter<long> BlocksRead { get; }

    public Counter<long> BlocksCorrupt { get; }

    public Histogram<double> FsyncDuration { get; }

    public Histogram<long> ApplyBatchBlocks { get; }

    public void Dispose() => _meter.Dispose();
}
