namespace Converge.Client.Bench;

/// <summary>What <c>converge bench</c> was asked for.</summary>
public sealed record BenchOptions(
    bool Quick = false, int Compute = 2, int Storage = 2, int? RuntimeSeconds = null, string NvramMode = "fsync", int LogBandwidthMb = 0, bool Scaling = false,
    int Repeat = 1)
{
    public const int MaxRuntimeSeconds = 120;
    public const int MaxRepeat = 9;
    public const int MaxLogBandwidthMb = 100_000;

    /// <summary>A message for the operator when the options cannot be run, else null.</summary>
    public string? Check()
    {
        if (Storage < 2)
        {
            return "--storage must be at least 2: every write is mirrored on two storage silos";
        }

        if (Compute < 1)
        {
            return "--compute must be at least 1";
        }

        if (RuntimeSeconds is { } r && r is < 1 or > MaxRuntimeSeconds)
        {
            return $"--runtime must be from 1 to {MaxRuntimeSeconds} seconds";
        }

        if (NvramMode is not ("fsync" or "memory"))
        {
            return "--nvram-mode must be fsync or memory";
        }

        if (Repeat is < 1 or > MaxRepeat)
        {
            return $"--repeat must be from 1 to {MaxRepeat}";
        }

        if (LogBandwidthMb is < 0 or > MaxLogBandwidthMb)
        {
            return $"--log-bandwidth-mb must be from 0 (no cap) to {MaxLogBandwidthMb} MB/s";
        }

        return null;
    }
}

/// <summary>One fio workload, run identically against Converge and every baseline.</summary>
/// <param name="Name">Stable job name used in tables, JSON and targets.</param>
/// <param name="Rw">fio <c>--rw</c> value.</param>
public sealed record FioJob(string Name, string Rw, int BlockSizeBytes, int IoDepth)
{
    public bool IsWrite => Rw.Contains("write", StringComparison.Ordinal);

    public static readonly FioJob RandWriteQd1 = new("randwrite-4k-qd1", "randwrite", 4096, 1);
    public static readonly FioJob RandWriteQd32 = new("randwrite-4k-qd32", "randwrite", 4096, 32);
    public static readonly FioJob RandReadQd1 = new("randread-4k-qd1", "randread", 4096, 1);
    public static readonly FioJob RandReadQd32 = new("randread-4k-qd32", "randread", 4096, 32);
    public static readonly FioJob SeqWrite = new("seqwrite-1m-qd8", "write", 1 << 20, 8);
    public static readonly FioJob SeqRead = new("seqread-1m-qd8", "read", 1 << 20, 8);

    /// <summary>One pass over the working set with every compute node's cache dropped: served by the storage silos.</summary>
    public static readonly FioJob RandReadQd32Cold = new("randread-4k-qd32-cold", "randread", 4096, 32);

    /// <summary>One pass on another compute node, which takes the volume over: served from the previous holder's cache.</summary>
    public static readonly FioJob RandReadQd32Peer = new("randread-4k-qd32-peer", "randread", 4096, 32);
}

/// <summary>
/// The jobs, their length and the region they touch. Random reads run after a sequential prefill of the whole
/// region, so they are served from what was written (for Converge: the compute node's block cache or the log).
/// The region is kept below the compute node's block cache (256 MiB) on purpose: this measures the local-cache path.
/// </summary>
public sealed record BenchPlan(IReadOnlyList<FioJob> Jobs, int RuntimeSeconds, long WorkingSetBytes, long VolumeSizeBytes, bool Quick, int Repeat = 1)
{
    /// <summary>Seconds of unrecorded random writes each system runs first (see <c>BenchRunner.RunSystemAsync</c>).</summary>
    public int WarmupSeconds => Quick ? 5 : 15;

    /// <summary>The baseline jobs the targets compare against; a quick run measures only these on the baselines.</summary>
    private static readonly Dictionary<string, FioJob[]> TargetJobs = new()
    {
        [BenchSystems.NbdkitMemory] = [FioJob.RandWriteQd1, FioJob.RandReadQd1, FioJob.RandReadQd32],
        [BenchSystems.QemuNbdCacheNone] = [FioJob.RandReadQd32],
        [BenchSystems.QemuNbdDirectSync] = [FioJob.RandWriteQd32],
        [BenchSystems.Disk] = [FioJob.RandWriteQd1, FioJob.SeqWrite],
    };

    /// <summary>Every job on Converge; on a baseline, every job, or in a quick run only those a target needs.</summary>
    public IReadOnlyList<FioJob> JobsFor(string system) =>
        Quick && TargetJobs.TryGetValue(system, out var needed) ? Jobs.Where(needed.Contains).ToArray() : Jobs;

    public static BenchPlan For(BenchOptions options)
    {
        var jobs = new List<FioJob> { FioJob.RandWriteQd1, FioJob.RandWriteQd32, FioJob.SeqWrite, FioJob.RandReadQd1, FioJob.RandReadQd32 };
        if (!options.Quick)
        {
            jobs.Add(FioJob.SeqRead);
        }

        var runtime = options.RuntimeSeconds ?? (options.Quick ? 3 : 10);
        var workingSet = options.Quick ? 64L << 20 : 128L << 20;
        return new BenchPlan(jobs, runtime, workingSet, 1L << 30, options.Quick, options.Repeat);
    }
}
