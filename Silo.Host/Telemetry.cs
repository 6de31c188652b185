using System.Diagnostics.Metrics;
using Converge.Buffers;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace Converge.Hosting;

/// <summary>Prometheus metrics on every silo at <c>http://ADDRESS:HTTP_PORT/metrics</c>, on the silo's own address (127.0.0.1 by default).</summary>
public static class Telemetry
{
    /// <summary>Every meter the silo publishes: Orleans' own and one per Converge subsystem.</summary>
    public static readonly string[] Meters = ["Microsoft.Orleans", "Converge.Log", "Converge.Extents", "Converge.Controller", "Converge.Nbd", "Converge.Cache", BuffersMeterName];

    private const string BuffersMeterName = "Converge.Buffers";

    /// <summary>The process-wide pool of large data-path buffers: what it holds idle, and what its trims let go.</summary>
    private static readonly Meter BuffersMeter = CreateBuffersMeter();

    private static Meter CreateBuffersMeter()
    {
        var meter = new Meter(BuffersMeterName);
        meter.CreateObservableGauge("converge.buffers.idle", () => LargeBuffers.IdleBytes, "By", "Bytes of large data-path buffers held idle for reuse");
        meter.CreateObservableCounter("converge.buffers.trimmed", () => LargeBuffers.TrimmedBytes, "By", "Bytes of idle buffers let go by the pool's trims");
        return meter;
    }

    public static void AddConvergeMetrics(this IServiceCollection services, SiloSettings settings)
    {
        if (settings.HttpPort == 0)
        {
            return;
        }

        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(Meters)
            .AddPrometheusHttpListener(o =>
            {
                o.Host = settings.Address.ToString();
                o.Port = settings.HttpPort;
            }));
    }
}
