using System.Globalization;

namespace Converge.Client.Bench;

/// <summary>
/// Burst and sustained sequential-write throughput, told apart: every byte reaches this machine's one disk four times
/// (two log copies, two extent copies), but only the two log copies are on the acknowledgement's path while the NVRAM
/// budget (undestaged log bytes per storage silo) has room. fio writes 1 MiB blocks at queue depth 8 over the whole
/// volume for a fixed time and logs its bandwidth every second, while the bench samples every storage silo's NVRAM use.
/// Burst is the mean of the first <see cref="BurstSeconds"/> seconds; sustained is the mean of the last
/// <see cref="SustainedSeconds"/>, by when the writes get what destage drains if NVRAM filled
/// (<see cref="PeakNvramFill"/> near 1), or destage kept up with them if it did not.
/// </summary>
/// <param name="MBpsPerSecond">fio's bandwidth in each second of the run, MB/s.</param>
/// <param name="NvramFillPerSecond">The fullest storage silo's NVRAM use as a share of its budget, sampled once a second.</param>
public sealed record SequentialWritePhases(
    IReadOnlyList<double> MBpsPerSecond,
    IReadOnlyList<double> NvramFillPerSecond,
    double BurstMBps,
    double SustainedMBps,
    double PeakNvramFill)
{
    public const int BurstSeconds = 5;
    public const int SustainedSeconds = 10;

    /// <summary>The shortest run that has a burst and a sustained window that do not overlap.</summary>
    public const int MinimumSeconds = BurstSeconds + SustainedSeconds;

    /// <summary>Burst and sustained means from a run's per-second bandwidth; null when the run is too short to tell them apart.</summary>
    public static SequentialWritePhases? From(IReadOnlyList<double> mbpsPerSecond, IReadOnlyList<double> nvramFillPerSecond)
    {
        if (mbpsPerSecond.Count < MinimumSeconds)
        {
            return null;
        }

        var burst = mbpsPerSecond.Take(BurstSeconds).Average();
        var sustained = mbpsPerSecond.Skip(mbpsPerSecond.Count - SustainedSeconds).Average();
        var peak = nvramFillPerSecond.Count == 0 ? double.NaN : nvramFillPerSecond.Max();
        return new SequentialWritePhases(mbpsPerSecond, nvramFillPerSecond, burst, sustained, peak);
    }

    /// <summary>
    /// fio's bandwidth log (<c>--write_bw_log</c> with <c>--log_avg_msec=1000</c>): one line per interval, "time ms,
    /// KiB/s, direction, block size, offset[, priority]". Returns MB/s per line, in order.
    /// </summary>
    /// <exception cref="FormatException">A line is not in that form.</exception>
    public static IReadOnlyList<double> ParseBandwidthLog(string text)
    {
        var values = new List<double>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var fields = line.Split(',');
            if (fields.Length < 2
                || !long.TryParse(fields[0].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out _)
                || !double.TryParse(fields[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var kibPerSecond)
                || kibPerSecond < 0)
            {
                throw new FormatException($"not a fio bandwidth log line: '{line}'");
            }

            values.Add(kibPerSecond * 1024 / 1e6);
        }

        return values;
    }

    public string Describe()
    {
        var ic = CultureInfo.InvariantCulture;
        var peak = double.IsNaN(PeakNvramFill) ? "not sampled" : PeakNvramFill.ToString("0%", ic);
        var meaning = double.IsNaN(PeakNvramFill) || PeakNvramFill < 0.9
            ? "NVRAM never filled, so destage kept up with the sustained rate"
            : "NVRAM filled, so the sustained rate is what destage drains";
        var perSecond = string.Join(' ', MBpsPerSecond.Select(v => v.ToString("0", ic)));
        return string.Create(ic,
            $"burst (first {BurstSeconds} s) {BurstMBps:0.0} MB/s, sustained (last {SustainedSeconds} s of {MBpsPerSecond.Count}) {SustainedMBps:0.0} MB/s; " +
            $"the fullest storage silo's NVRAM peaked at {peak} of its budget ({meaning}). Per second, MB/s: {perSecond}.");
    }
}
