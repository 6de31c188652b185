using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Converge.Client.Bench;

/// <summary>Renders a <see cref="BenchRun"/> as a markdown section (printed and appended to BENCHMARKS.md) and as JSON.</summary>
public static class BenchReport
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static string Json(BenchRun run)
    {
        var document = new
        {
            run.StartedAt,
            run.Commit,
            run.Command,
            run.Cpus,
            run.MemoryBytes,
            run.CpuModel,
            run.ComputeSilos,
            run.StorageSilos,
            run.NvramMode,
            run.LogBandwidthMb,
            run.RuntimeSecondsPerJob,
            run.RunsPerJob,
            run.WorkingSetBytes,
            run.LoopbackRttUs,
            FdatasyncP50Us = BenchTargets.FdatasyncP50Us(run),
            run.DurationSeconds,
            run.LoadAverageAtStart,
            run.LoadAverageAtEnd,
            run.SiloPeakRssBytes,
            run.Systems,
            Targets = run.Targets.Select(t => new { t.Name, t.Formula, t.Ratio, t.Threshold, t.AtLeast, t.Status }),
        };
        return JsonSerializer.Serialize(document, JsonOptions);
    }

    public static string Markdown(BenchRun run)
    {
        var text = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        text.AppendLine(ic, $"## {run.StartedAt:yyyy-MM-dd HH:mm} UTC: `{run.Command}`");
        text.AppendLine();
        text.AppendLine(ic, $"Commit `{run.Commit}`; {run.Cpus} CPUs ({run.CpuModel}), {run.MemoryBytes / (double)(1L << 30):0.0} GiB RAM; " +
            $"{run.ComputeSilos} compute + {run.StorageSilos} storage silos, NVRAM mode {run.NvramMode}{(run.LogBandwidthMb > 0 ? $", log capped at {run.LogBandwidthMb} MB/s per storage silo" : "")}; " +
            $"{run.RuntimeSecondsPerJob} s per job{(run.RunsPerJob > 1 ? $", each run {run.RunsPerJob} times (rows: the run with the median IOPS; every run's IOPS below)" : "")} over a {run.WorkingSetBytes >> 20} MiB working set (prefilled); " +
            $"loopback RTT p50 {run.LoopbackRttUs:0.0} us; disk fdatasync p50 {Us(BenchTargets.FdatasyncP50Us(run))}; run took {run.DurationSeconds:0} s; load average {run.LoadAverageAtStart} at start, {run.LoadAverageAtEnd} at end.");
        text.AppendLine();
        text.AppendLine("| job | system | IOPS | MB/s | p50 us | p99 us | p99.9 us | server CPU s/GiB | Converge/this IOPS | Converge/this p50 |");
        text.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var converge = run.Find(BenchSystems.Converge);
        foreach (var job in converge?.Jobs.Select(j => j.Job) ?? [])
        {
            foreach (var system in run.Systems)
            {
                if (system.Find(job) is not { } r)
                {
                    continue;
                }

                var isConverge = system.System == BenchSystems.Converge;
                var iopsRatio = isConverge ? "" : Ratio(BenchTargets.IopsRatio(run, job, system.System));
                var p50Ratio = isConverge ? "" : Ratio(BenchTargets.P50Ratio(run, job, system.System));
                var name = isConverge ? $"**{system.System}**" : system.System;
                text.AppendLine(ic, $"| {job} | {name} | {r.Fio.Iops:0} | {r.Fio.BandwidthMBps:0.0} | {r.Fio.ClatP50Us:0} | {r.Fio.ClatP99Us:0} | {r.Fio.ClatP999Us:0} | {(r.CpuSecondsPerGiB is { } c ? c.ToString("0.00", ic) : "-")} | {iopsRatio} | {p50Ratio} |");
            }
        }

        if (run.RunsPerJob > 1)
        {
            text.AppendLine();
            text.AppendLine("IOPS of every run (median first): " + string.Join("; ", run.Systems.SelectMany(s => s.Jobs.Where(j => j.RunIops is { Count: > 1 })
                .Select(j => string.Create(ic, $"{s.System} {j.Job} {j.Fio.Iops:0} ({string.Join(", ", j.RunIops!.Select(i => i.ToString("0", ic)))})")))) + ".");
        }

        foreach (var tier in converge?.Jobs.Where(j => j.ServedFrom is not null) ?? [])
        {
            text.AppendLine();
            text.AppendLine(ic, $"{tier.Job}: {tier.ServedFrom}.");
        }

        if (run.SequentialWrite is { } sequential)
        {
            var disk = run.Find(BenchSystems.Disk)?.Find(FioJob.SeqWrite.Name)?.Fio.BandwidthMBps;
            var versus = disk is > 0 ? string.Create(ic, $" Against the disk's {FioJob.SeqWrite.Name}: burst {sequential.BurstMBps / disk.Value:0.00}x, sustained {sequential.SustainedMBps / disk.Value:0.00}x.") : "";
            text.AppendLine();
            text.AppendLine(ic, $"Sequential writes over the whole volume, burst and sustained ({FioJob.SeqWrite.Name}, after destage drained): {sequential.Describe()}{versus}");
        }

        text.AppendLine();
        text.AppendLine("| target | measured | need | status |");
        text.AppendLine("| --- | ---: | ---: | --- |");
        foreach (var target in run.Targets)
        {
            text.AppendLine(ic, $"| {target.Name} ({target.Formula}) | {Ratio(target.Ratio)} | {target.Need} | {target.Status} |");
        }

        text.AppendLine();
        text.AppendLine("Peak RSS (VmHWM) per silo: " + string.Join(", ", run.SiloPeakRssBytes.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => string.Create(ic, $"{p.Key} {p.Value / (double)(1 << 20):0} MiB"))) + ".");
        text.AppendLine();
        text.AppendLine("Systems: " + string.Join("; ", run.Systems.Select(s => $"{s.System}: {s.Description}")) + ".");
        text.AppendLine();
        return text.ToString();
    }

    /// <summary>A scaling run: one row per cluster shape and job, with its gain over the first shape.</summary>
    public static string Markdown(ScalingRun run)
    {
        var text = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        text.AppendLine(ic, $"## {run.StartedAt:yyyy-MM-dd HH:mm} UTC: `{run.Command}`");
        text.AppendLine();
        text.AppendLine(ic, $"Commit `{run.Commit}`; {run.Cpus} CPUs ({run.CpuModel}); NVRAM mode {run.NvramMode}" +
            $"{(run.LogBandwidthMb > 0 ? $", log capped at {run.LogBandwidthMb} MB/s per storage silo" : ", log not capped")}; " +
            $"{run.VolumesPerCompute} volumes per compute silo, one fio process per compute silo (queue depth 32 in all per compute silo); " +
            $"{run.RuntimeSecondsPerJob} s per job; run took {run.DurationSeconds:0} s; load average {run.LoadAverageAtStart} at start, {run.LoadAverageAtEnd} at end.");
        text.AppendLine();
        text.AppendLine("| compute | storage | job | IOPS (sum) | MB/s | worst p50 us | worst p99 us | silo CPU us per I/O | IOPS vs first shape |");
        text.AppendLine("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var point in run.Points)
        {
            var first = run.Points.First(p => p.Job == point.Job);
            var gain = first.Iops > 0 ? (point.Iops / first.Iops).ToString("0.00", ic) + "x" : "-";
            text.AppendLine(ic, $"| {point.Compute} | {point.Storage} | {point.Job} | {point.Iops:0} | {point.BandwidthMBps:0.0} | {point.P50Us:0} | {point.P99Us:0} | {point.CpuUsPerIo:0} | {gain} |");
        }

        text.AppendLine();
        return text.ToString();
    }

    /// <summary>Appends the run to BENCHMARKS.md (created with a short preface if absent) and writes the JSON; returns the JSON path.</summary>
    public static string Save(BenchRun run, string repositoryRoot) => Save(Markdown(run), Json(run), run.StartedAt, repositoryRoot);

    public static string Save(ScalingRun run, string repositoryRoot) =>
        Save(Markdown(run), JsonSerializer.Serialize(run, JsonOptions), run.StartedAt, repositoryRoot);

    private static string Save(string section, string jsonText, DateTimeOffset startedAt, string repositoryRoot)
    {
        var markdown = Path.Combine(repositoryRoot, "BENCHMARKS.md");
        if (!File.Exists(markdown))
        {
            File.WriteAllText(markdown, Preface);
        }

        AppendSection(markdown, section);
        var directory = Path.Combine(repositoryRoot, "bench-results");
        Directory.CreateDirectory(directory);
        var json = Path.Combine(directory, $"{startedAt:yyyyMMdd-HHmmss}.json");
        File.WriteAllText(json, jsonText);
        return json;
    }

    /// <summary>
    /// Appends <paramref name="section"/> to the markdown file at <paramref name="path"/>, after a blank line, so sections
    /// stay apart however the file ended (notes written by hand at its end need not end with one).
    /// </summary>
    public static void AppendSection(string path, string section)
    {
        var tail = "";
        using (var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Read))
        {
            var length = (int)Math.Min(2, file.Length);
            if (length > 0)
            {
                var bytes = new byte[length];
                file.Seek(-length, SeekOrigin.End);
                file.ReadExactly(bytes);
                tail = System.Text.Encoding.ASCII.GetString(bytes);
            }
        }

        var separator = tail.Length == 0 || tail.EndsWith("\n\n", StringComparison.Ordinal) ? ""
            : tail.EndsWith('\n') ? "\n"
            : "\n\n";
        File.AppendAllText(path, separator + section);
    }

    private const string Preface = """
        # Benchmarks

        Appended by `./converge bench`: each section is one run on a fresh local cluster, with the same fio jobs run in the
        same session against nbdkit's memory plugin (the NBD protocol ceiling), qemu-nbd on a raw file (cache=none and
        cache=directsync) and the raw disk (O_DIRECT, fdatasync after each write); each system first runs unrecorded 4 KiB
        random writes (a warm-up: 5 s with --quick, else 15 s; runs before 2026-11-28 had none). Latencies are fio completion latency
        (clat). Ratios are Converge / baseline: above 1 is better for IOPS, below 1 is better for latency. Without --quick,
        Converge last writes 1 MiB blocks sequentially over the whole volume for 30 s: burst is the mean of the first 5 s,
        sustained of the last 10 s, beside the fullest storage silo's NVRAM fill. The JSON of each run is kept in
        `bench-results/` (not committed).


        """;

    private static string Ratio(double? ratio) => ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-";

    private static string Us(double? us) => us is { } u ? u.ToString("0", CultureInfo.InvariantCulture) + " us" : "-";
}
