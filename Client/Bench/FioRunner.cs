using System.Globalization;

namespace Converge.Client.Bench;

/// <summary>Where fio sends its I/O: an NBD server (fio's nbd engine) or a file on the local disk.</summary>
public abstract record FioTarget
{
    public abstract IEnumerable<string> EngineArguments(FioJob job);

    /// <summary>An NBD export reached through fio's libnbd engine.</summary>
    public sealed record Nbd(int Port, string ExportName) : FioTarget
    {
        public override IEnumerable<string> EngineArguments(FioJob job) =>
            ["--ioengine=nbd", $"--uri=nbd://127.0.0.1:{Port}/{ExportName}"];
    }

    /// <summary>
    /// A file with O_DIRECT: psync at queue depth 1, libaio above. Writes are followed by fdatasync each, so an
    /// acknowledged write is durable, as it is for Converge.
    /// </summary>
    public sealed record DiskFile(string Path) : FioTarget
    {
        public override IEnumerable<string> EngineArguments(FioJob job)
        {
            yield return job.IoDepth > 1 ? "--ioengine=libaio" : "--ioengine=psync";
            yield return "--direct=1";
            yield return "--filename=" + Path;
            if (job.IsWrite)
            {
                yield return "--fdatasync=1";
            }
        }
    }
}

/// <summary>Runs one fio job and parses its JSON report.</summary>
public sealed class FioRunner(string workDirectory)
{
    private int _runs;

    /// <param name="bandwidthLogPrefix">When set, fio also logs its bandwidth once a second to <c>{prefix}_bw.1.log</c>.</param>
    public static IReadOnlyList<string> Arguments(FioJob job, FioTarget target, long sizeBytes, int? runtimeSeconds, string outputPath, string? bandwidthLogPrefix = null)
    {
        var arguments = new List<string>
        {
            "--name=" + job.Name,
            "--rw=" + job.Rw,
            "--bs=" + job.BlockSizeBytes.ToString(CultureInfo.InvariantCulture),
            "--iodepth=" + job.IoDepth.ToString(CultureInfo.InvariantCulture),
            "--size=" + sizeBytes.ToString(CultureInfo.InvariantCulture),
            "--output-format=json",
            "--output=" + outputPath,
        };
        if (runtimeSeconds is { } seconds)
        {
            arguments.Add("--time_based");
            arguments.Add("--runtime=" + seconds.ToString(CultureInfo.InvariantCulture));
        }

        if (bandwidthLogPrefix is not null)
        {
            arguments.Add("--write_bw_log=" + bandwidthLogPrefix);
            arguments.Add("--log_avg_msec=1000");
        }

        arguments.AddRange(target.EngineArguments(job));
        return arguments;
    }

    /// <summary>
    /// One fio process running <paramref name="job"/> on several exports of one NBD server at once (one fio job per
    /// export, each at the job's queue depth), reported as a group: the figures are their sum.
    /// </summary>
    public static IReadOnlyList<string> GroupArguments(FioJob job, int port, IReadOnlyList<string> exports, long sizeBytes, int? runtimeSeconds, string outputPath)
    {
        var arguments = new List<string>(Arguments(job, new FioTarget.Nbd(port, exports[0]), sizeBytes, runtimeSeconds, outputPath).Where(a => !a.StartsWith("--name=", StringComparison.Ordinal) && !a.StartsWith("--uri=", StringComparison.Ordinal)))
        {
            "--group_reporting",
        };
        foreach (var export in exports)
        {
            arguments.Add($"--name={job.Name}-{export}");
            arguments.Add($"--uri=nbd://127.0.0.1:{port}/{export}");
        }

        return arguments;
    }

    /// <summary>Runs <paramref name="job"/> on every export in <paramref name="exports"/> at once (see <see cref="GroupArguments"/>).</summary>
    public Task<FioMeasurement> RunManyAsync(FioJob job, int port, IReadOnlyList<string> exports, long sizeBytes, int? runtimeSeconds, CancellationToken cancellationToken)
    {
        var output = Path.Combine(workDirectory, $"fio-{Interlocked.Increment(ref _runs):D3}-{job.Name}-{port}.json");
        return RunProcessAsync(job, GroupArguments(job, port, exports, sizeBytes, runtimeSeconds, output), output, runtimeSeconds, cancellationToken);
    }

    /// <summary>Runs <paramref name="job"/> for <paramref name="runtimeSeconds"/>, or once over the region when null.</summary>
    public async Task<FioMeasurement> RunAsync(FioJob job, FioTarget target, long sizeBytes, int? runtimeSeconds, CancellationToken cancellationToken)
    {
        var output = Path.Combine(workDirectory, $"fio-{Interlocked.Increment(ref _runs):D3}-{job.Name}.json");
        return await RunProcessAsync(job, Arguments(job, target, sizeBytes, runtimeSeconds, output), output, runtimeSeconds, cancellationToken);
    }

    /// <summary>Runs <paramref name="job"/> for <paramref name="runtimeSeconds"/> with fio's bandwidth logged every second (MB/s per second).</summary>
    public async Task<(FioMeasurement Measurement, IReadOnlyList<double> MBpsPerSecond)> RunWithBandwidthLogAsync(
        FioJob job, FioTarget target, long sizeBytes, int runtimeSeconds, CancellationToken cancellationToken)
    {
        var name = $"fio-{Interlocked.Increment(ref _runs):D3}-{job.Name}";
        var output = Path.Combine(workDirectory, name + ".json");
        var prefix = Path.Combine(workDirectory, name);
        var measured = await RunProcessAsync(job, Arguments(job, target, sizeBytes, runtimeSeconds, output, prefix), output, runtimeSeconds, cancellationToken);
        var log = prefix + "_bw.1.log";
        try
        {
            return (measured, SequentialWritePhases.ParseBandwidthLog(await File.ReadAllTextAsync(log, cancellationToken)));
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            throw new BenchException($"could not read fio's bandwidth log {log}: {e.Message}");
        }
    }

    private static async Task<FioMeasurement> RunProcessAsync(FioJob job, IReadOnlyList<string> arguments, string output, int? runtimeSeconds, CancellationToken cancellationToken)
    {
        await using var fio = ChildProcess.Start("fio", arguments);
        var timeout = TimeSpan.FromSeconds((runtimeSeconds ?? 120) + 60);
        var exit = await fio.WaitForExitAsync(timeout, cancellationToken);
        var text = File.Exists(output) ? await File.ReadAllTextAsync(output, cancellationToken) : "";
        if (exit != 0 || text.Length == 0)
        {
            throw new BenchException($"fio {job.Name} exited with code {exit}: {fio.OutputTail.Trim()}");
        }

        try
        {
            return FioMeasurement.Parse(text, job.IsWrite);
        }
        catch (Exception e) when (e is FormatException or System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new BenchException($"could not read fio's report {output}: {e.Message}");
        }
    }
}
