using System.Diagnostics.Metrics;

namespace Converge.Grains.Controller;

/// <summary>
/// Metrics of the volume controllers on this node, meter <c>Converge.Controller</c>. One static meter: controllers are
/// grains, many per silo, and their histograms aggregate per node.
/// </summary>
internal static class ControllerInstruments
{
    public const string MeterName = "Converge.Controller";

    private static readonly Meter Meter = new(MeterName);

    /// <summary>One record sent to both mirrors until both answered (one attempt; a rotation starts another).</summary>
    public static readonly Histogram<double> MirrorAppendDuration =
        Meter.CreateHistogram<double>("converge.controller.mirror_append.duration", "ms", "Both mirrors' append of one record, one attempt");

    /// <summary>Sealing the open segment and opening the next; appends wait for it.</summary>
    public static readonly Histogram<double> RotationDuration =
        Meter.CreateHistogram<double>("converge.controller.rotation.duration", "ms", "Seal of the open segment and opening of the next");

    /// <summary>Writes refused unapplied because their deadline had passed before they got a log position.</summary>
    public static readonly Counter<long> ExpiredWrites =
        Meter.CreateCounter<long>("converge.controller.expired_writes", "{write}", "Writes refused unapplied: their caller's deadline passed first");

    /// <summary>Large records that waited for room in their volume's append window (backpressure from slow mirrors).</summary>
    public static readonly Counter<long> WindowWaits =
        Meter.CreateCounter<long>("converge.controller.append_window_waits", "{record}", "Large records that waited for room in the append window");

    /// <summary>Requests carried by one batch call (WriteMany or ReadMany, tag <c>kind</c>); calls of a single request are not counted.</summary>
    public static readonly Histogram<int> BatchRequests =
        Meter.CreateHistogram<int>("converge.controller.batch.requests", "{request}", "Requests carried by one batch call");
}
