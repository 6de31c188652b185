using System.Diagnostics.Metrics;

namespace Converge.Grains.Log;

/// <summary>Metrics of the silo log, meter <c>Converge.Log</c>.</summary>
public sealed class LogInstruments : IDisposable
{
    public const string MeterName = "Converge.Log";

    private readonly Meter _meter;

    public LogInstruments(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        BatchRecords = _meter.CreateHistogram<int>("converge.log.batch.records", "{record}", "Records committed by one group commit");
        BatchBytes = _meter.CreateHistogram<int>("converge.log.batch.bytes", "By", "Frame bytes written by one group commit");
        FlushDuration = _meter.CreateHistogram<double>("converge.log.flush.duration", "ms", "Duration of one commit's fdatasync");
        Appends = _meter.CreateCounter<long>("converge.log.appends", "{record}", "Appends by outcome");
        AppendDuration = _meter.CreateHistogram<double>("converge.log.append.duration", "ms", "From admission to commit of one append (queueing, write and fdatasync)");
    }

    public Histogram<int> BatchRecords { get; }

    public Histogram<int> BatchBytes { get; }

    public Histogram<double> FlushDuration { get; }

    public Counter<long> Appends { get; }

    public Histogram<double> AppendDuration { get; }

    public void Dispose() => _meter.Dispose();
}
