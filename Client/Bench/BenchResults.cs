namespace Converge.Client.Bench;

/// <summary>The systems measured, by the names used in tables, JSON and targets.</summary>
public static class BenchSystems
{
    public const string Converge = "converge";
    public const string NbdkitMemory = "nbdkit-memory";
    public const string QemuNbdCacheNone = "qemu-nbd-none";
    public const string QemuNbdDirectSync = "qemu-nbd-directsync";
    public const string Disk = "disk";
}

/// <summary>One job on one system: fio's figures plus the server side CPU cost.</summary>
/// <param name="CpuSecondsPerGiB">CPU seconds of every server process (silos, nbdkit, qemu-nbd) per GiB moved; null for the disk.</param>
/// <param name="ServedFrom">For Converge's read-tier jobs: which tiers of the reading compute node answered, from its counters.</param>
/// <param name="RunIops">With --repeat: the IOPS of every run in order; <see cref="Fio"/> is the run with the median IOPS.</param>
public sealed record JobResult(string Job, FioMeasurement Fio, double? CpuSecondsPerGiB, string? ServedFrom = null, IReadOnlyList<double>? RunIops = null)
{
    /// <summary>
    /// The run with the median IOPS (the lower middle one for an even count), kept whole so that its latencies and CPU
    /// belong to the same run; with the other runs' IOPS beside it.
    /// </summary>
    public static JobResult MedianOf(IReadOnlyList<JobResult> runs)
    {
        if (runs.Count == 0)
        {
            throw new ArgumentException("no runs to take a median of", nameof(runs));
        }

        if (runs.Count == 1)
        {
            return runs[0];
        }

        var median = runs.OrderBy(r => r.Fio.Iops).ElementAt((runs.Count - 1) / 2);
        return median with { RunIops = runs.Select(r => r.Fio.Iops).ToArray() };
    }
}

public sealed record SystemResult(string System, string Description, IReadOnlyList<JobResult> Jobs)
{
    public JobResult? Find(string job)
    {
        foreach (var result in Jobs)
        {
            if (result.Job == job)
            {
                return result;
            }
        }

        return null;
    }
}

/// <summary>A target from the design: a ratio of Converge to a baseline that must reach (or stay under) a threshold.</summary>
public sealed record TargetResult(string Name, string Formula, double? Ratio, double Threshold, bool AtLeast)
{
    public string Status => Ratio is not { } r || double.IsNaN(r) ? "NOT MEASURED"
        : (AtLeast ? r >= Threshold : r <= Threshold) ? "MET" : "MISSED";

    public string Need => (AtLeast ? ">= " : "<= ") + Threshold.ToString("0.0#", System.Globalization.CultureInfo.InvariantCulture) + "x";
}

/// <summary>A whole run: environment, plan, every measurement and the targets.</summary>
public sealed record BenchRun(
    DateTimeOffset StartedAt,
    string Commit,
    string Command,
    int Cpus,
    long MemoryBytes,
    string CpuModel,
    int ComputeSilos,
    int StorageSilos,
    string NvramMode,
    int LogBandwidthMb,
    int RuntimeSecondsPerJob,
    int RunsPerJob,
    long WorkingSetBytes,
    double LoopbackRttUs,
    IReadOnlyList<SystemResult> Systems,
    IReadOnlyDictionary<string, long> SiloPeakRssBytes,
    double DurationSeconds,
    string LoadAverageAtStart,
    string LoadAverageAtEnd,
    SequentialWritePhases? SequentialWrite = null)
{
    public SystemResult? Find(string system)
    {
        foreach (var result in Systems)
        {
            if (result.System == system)
            {
                return result;
            }
        }

        return null;
    }

    public IReadOnlyList<TargetResult> Targets => BenchTargets.Evaluate(this);
}

/// <summary>Converge / baseline ratios and the design's performance targets.</summary>
public static class BenchTargets
{
    /// <summary>Converge's IOPS over the baseline's for one job; null when either was not measured.</summary>
    public static double? IopsRatio(BenchRun run, string job, string baseline) =>
        Ratio(run.Find(BenchSystems.Converge)?.Find(job)?.Fio.Iops, run.Find(baseline)?.Find(job)?.Fio.Iops);

    /// <summary>Converge's median completion latency over the baseline's for one job.</summary>
    public static double? P50Ratio(BenchRun run, string job, string baseline) =>
        Ratio(run.Find(BenchSystems.Converge)?.Find(job)?.Fio.ClatP50Us, run.Find(baseline)?.Find(job)?.Fio.ClatP50Us);

    /// <summary>The median fdatasync of the disk after a 4 KiB write, from the disk's queue-depth-1 write job.</summary>
    public static double? FdatasyncP50Us(BenchRun run) => run.Find(BenchSystems.Disk)?.Find(FioJob.RandWriteQd1.Name)?.Fio.SyncP50Us;

    /// <summary>nbdkit-memory qd1 write p50 + loopback round trip + one fdatasync: the floor for a durable remote write.</summary>
    public static double? WriteLatencyFloorUs(BenchRun run)
    {
        var nbdkit = run.Find(BenchSystems.NbdkitMemory)?.Find(FioJob.RandWriteQd1.Name)?.Fio.ClatP50Us;
        return nbdkit is { } n && FdatasyncP50Us(run) is { } sync ? n + run.LoopbackRttUs + sync : null;
    }

    public static IReadOnlyList<TargetResult> Evaluate(BenchRun run)
    {
        var converge = run.Find(BenchSystems.Converge);
        return
        [
            new("4K randwrite qd32 IOPS vs qemu-nbd directsync", "converge / qemu-nbd-directsync",
                IopsRatio(run, FioJob.RandWriteQd32.Name, BenchSystems.QemuNbdDirectSync), 1.5, AtLeast: true),
            new("4K randwrite qd1 p50 vs durable-write floor", "converge p50 / (nbdkit-memory p50 + loopback RTT + fdatasync p50)",
                Ratio(converge?.Find(FioJob.RandWriteQd1.Name)?.Fio.ClatP50Us, WriteLatencyFloorUs(run)), 1.5, AtLeast: false),
            new("4K randread qd32 IOPS vs qemu-nbd cache=none", "converge / qemu-nbd-none",
                IopsRatio(run, FioJob.RandReadQd32.Name, BenchSystems.QemuNbdCacheNone), 1.0, AtLeast: true),
            new("4K randread qd32 IOPS vs nbdkit memory", "converge / nbdkit-memory",
                IopsRatio(run, FioJob.RandReadQd32.Name, BenchSystems.NbdkitMemory), 0.6, AtLeast: true),
            new("4K randread qd1 p50 vs nbdkit memory", "converge p50 / nbdkit-memory p50",
                P50Ratio(run, FioJob.RandReadQd1.Name, BenchSystems.NbdkitMemory), 1.5, AtLeast: false),
            new("1M seq write MB/s vs disk direct+fdatasync", "converge / disk",
                Ratio(converge?.Find(FioJob.SeqWrite.Name)?.Fio.BandwidthBytesPerSecond,
                    run.Find(BenchSystems.Disk)?.Find(FioJob.SeqWrite.Name)?.Fio.BandwidthBytesPerSecond), 0.4, AtLeast: true),
        ];
    }

    private static double? Ratio(double? numerator, double? denominator) =>
        numerator is { } n && denominator is { } d && d > 0 ? n / d : null;
}
