using System.Globalization;
using System.Text.Json;

namespace Converge.Client.Bench;

/// <summary>What fio reported for one job (one direction: reads for read jobs, writes for write jobs).</summary>
public sealed record FioMeasurement(
    double Iops,
    double BandwidthBytesPerSecond,
    long IoBytes,
    double RuntimeSeconds,
    double ClatP50Us,
    double ClatP99Us,
    double ClatP999Us,
    double? SyncP50Us)
{
    public double BandwidthMBps => BandwidthBytesPerSecond / 1e6;

    /// <summary>
    /// Parses fio's <c>--output-format=json</c> output for a single job. Text before the JSON object is skipped:
    /// fio's nbd engine prints "fio: connected to NBD server" on standard output first.
    /// </summary>
    public static FioMeasurement Parse(string fioOutput, bool write)
    {
        var start = fioOutput.StartsWith('{') ? 0
            : fioOutput.IndexOf("\n{", StringComparison.Ordinal) is var newline and >= 0 ? newline + 1 : -1;
        if (start < 0)
        {
            throw new FormatException("fio output holds no JSON object");
        }

        using var document = JsonDocument.Parse(fioOutput.AsMemory(start));
        var jobs = document.RootElement.GetProperty("jobs");
        if (jobs.GetArrayLength() != 1)
        {
            throw new FormatException($"expected one fio job in the output, found {jobs.GetArrayLength()}");
        }

        var job = jobs[0];
        if (job.GetProperty("error").GetInt32() is var error and not 0)
        {
            throw new FormatException($"fio job '{job.GetProperty("jobname").GetString()}' failed with error {error}");
        }

        var side = job.GetProperty(write ? "write" : "read");
        var ioBytes = side.GetProperty("io_bytes").GetInt64();
        if (ioBytes <= 0)
        {
            throw new FormatException($"fio job '{job.GetProperty("jobname").GetString()}' moved no data in the {(write ? "write" : "read")} direction");
        }

        var clat = side.GetProperty("clat_ns");
        double? syncP50 = null;
        if (job.TryGetProperty("sync", out var sync) && sync.GetProperty("lat_ns").TryGetProperty("percentile", out var syncPercentiles))
        {
            syncP50 = Percentile(syncPercentiles, "50.000000") / 1000.0;
        }

        return new FioMeasurement(
            Iops: side.GetProperty("iops").GetDouble(),
            BandwidthBytesPerSecond: side.GetProperty("bw_bytes").GetDouble(),
            IoBytes: ioBytes,
            RuntimeSeconds: side.GetProperty("runtime").GetDouble() / 1000.0,
            ClatP50Us: Percentile(clat.GetProperty("percentile"), "50.000000") / 1000.0,
            ClatP99Us: Percentile(clat.GetProperty("percentile"), "99.000000") / 1000.0,
            ClatP999Us: Percentile(clat.GetProperty("percentile"), "99.900000") / 1000.0,
            SyncP50Us: syncP50);
    }

    private static double Percentile(JsonElement percentiles, string key) =>
        percentiles.TryGetProperty(key, out var value)
            ? value.GetDouble()
            : throw new FormatException($"fio output lacks the {double.Parse(key, CultureInfo.InvariantCulture)}th percentile");
}
