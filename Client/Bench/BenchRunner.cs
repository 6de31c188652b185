using System.Diagnostics;
using System.Globalization;
using Converge.Client.Local;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Volumes;

namespace Converge.Client.Bench;

/// <summary>
/// Runs the same fio jobs against a fresh Converge cluster and against the baselines (nbdkit memory, qemu-nbd with
/// cache=none and cache=directsync, the raw disk), all in one temporary directory. Every process it starts is killed
/// by pid before it returns, whether it succeeds, fails or is cancelled.
/// </summary>
public sealed partial class BenchRunner(string repositoryRoot, BenchOptions options, string command, TextWriter progress)
{
    private const string VolumeName = "bench";
    private readonly BenchPlan _plan = BenchPlan.For(options);

    public async Task<BenchRun> RunAsync(CancellationToken cancellationToken)
    {
        RequireTools("fio", "nbdkit", "qemu-nbd");
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var directory = CreateScratchDirectory();
        var load = LoadAverage();
        progress.WriteLine($"bench: load average {load}; {_plan.Jobs.Count} jobs on Converge, {(_plan.Quick ? "only the targets' jobs" : "the same jobs")} on 4 baselines, {_plan.RuntimeSeconds} s per job, working set {_plan.WorkingSetBytes >> 20} MiB, in {directory}");
        try
        {
            var rtt = LoopbackProbe.MedianRoundTripUs();
            progress.WriteLine($"bench: loopback TCP round trip p50 {rtt:0.0} us");
            var fio = new FioRunner(directory);
            var systems = new List<SystemResult>();
            var (converge, rss, sequential) = await RunConvergeAsync(directory, fio, cancellationToken);
            systems.Add(converge);
            systems.Add(await RunNbdkitAsync(fio, cancellationToken));
            var image = Path.Combine(directory, "qemu-nbd.raw");
            await using (var file = File.Create(image))
            {
                file.SetLength(_plan.VolumeSizeBytes);
            }

            systems.Add(await RunQemuNbdAsync(fio, image, "none", BenchSystems.QemuNbdCacheNone, cancellationToken));
            systems.Add(await RunQemuNbdAsync(fio, image, "directsync", BenchSystems.QemuNbdDirectSync, cancellationToken));
            File.Delete(image);
            systems.Add(await RunSystemAsync(
                BenchSystems.Disk, "fio on a file, O_DIRECT, psync at qd1 / libaio above, fdatasync after every write",
                fio, new FioTarget.DiskFile(Path.Combine(directory, "disk.dat")), new Dictionary<string, int>(), cancellationToken));

            return new BenchRun(
                started, GitCommit(), command, Environment.ProcessorCount, ProcessStats.MachineMemoryBytes(), CpuModel(),
                options.Compute, options.Storage, options.NvramMode, options.LogBandwidthMb, _plan.RuntimeSeconds, _plan.Repeat, _plan.WorkingSetBytes, rtt, systems, rss,
                clock.Elapsed.TotalSeconds, load, LoadAverage(), sequential);
        }
        finally
        {
            RemoveScratchDirectory(directory);
        }
    }

    private async Task<(SystemResult Result, IReadOnlyDictionary<string, long> PeakRss, SequentialWritePhases? Sequential)> RunConvergeAsync(
        string directory, FioRunner fio, CancellationToken cancellationToken)
    {
        var cluster = NewCluster(Path.Combine(directory, "cluster"));
        var offset = FreePortOffset(options.Compute, options.Storage);
        progress.WriteLine($"bench: starting {options.Storage} storage + {options.Compute} compute silos (port offset {offset})");
        try
        {
            var layout = await cluster.UpAsync(new UpOptions(options.Compute, options.Storage, Postgres: false, offset, options.NvramMode), cancellationToken);
            Guid volumeId;
            await using (var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancellationToken))
            {
                volumeId = await CreateVolumeAsync(client, VolumeName);
            }

            var pids = layout.Nodes.ToDictionary(n => n.Name, n => n.Pid);
            var nbdPort = layout.OfRole(NodeRoles.Compute).First().NbdPort;
            var result = await RunSystemAsync(
                BenchSystems.Converge, $"fio nbd engine -> compute-1 NBD, {options.Storage} storage silos, mirrored, log in NVRAM mode {options.NvramMode}",
                fio, new FioTarget.Nbd(nbdPort, VolumeName), pids, cancellationToken);
            result = result with { Jobs = [.. result.Jobs, .. await RunReadTiersAsync(cluster, layout, fio, pids, volumeId, cancellationToken)] };

            // Last, since it overwrites the whole volume and may leave much of it undestaged; through compute-1, whose
            // write path the earlier jobs compiled (a first run on a node that only read measured the JIT: 80 MB/s rising to 170).
            var sequential = _plan.Quick ? null : await RunSequentialPhasesAsync(cluster, layout, layout.OfRole(NodeRoles.Compute).First(), fio, cancellationToken);
            var rss = new Dictionary<string, long>();
            foreach (var (name, pid) in pids)
            {
                rss[name] = ProcessStats.PeakRssBytes(pid) ?? 0;
            }

            return (result, rss, sequential);
        }
        finally
        {
            await KillClusterAsync(cluster);
        }
    }

    private async Task<SystemResult> RunNbdkitAsync(FioRunner fio, CancellationToken cancellationToken)
    {
        var port = ChildProcess.FreePort();
        var size = _plan.VolumeSizeBytes.ToString(CultureInfo.InvariantCulture);
        // --exit-with-parent: if the bench itself dies, so does nbdkit. Its parent is a thread kept for it (see ChildProcess).
        await using var server = ChildProcess.Start("nbdkit", ["-f", "--exit-with-parent", "-i", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "memory", "size=" + size]);
        await server.WaitForPortAsync(port, TimeSpan.FromSeconds(10), cancellationToken);
        return await RunSystemAsync(
            BenchSystems.NbdkitMemory, "nbdkit memory plugin: the NBD protocol ceiling on this machine",
            fio, new FioTarget.Nbd(port, ""), new Dictionary<string, int> { ["nbdkit"] = server.Pid }, cancellationToken);
    }

    private async Task<SystemResult> RunQemuNbdAsync(FioRunner fio, string image, string cache, string system, CancellationToken cancellationToken)
    {
        var port = ChildProcess.FreePort();
        await using var server = ChildProcess.Start("qemu-nbd", [
            "--persistent", "--shared=4", "--bind=127.0.0.1", "--port=" + port.ToString(CultureInfo.InvariantCulture),
            "--export-name=bench", "--format=raw", "--cache=" + cache, image]);
        await server.WaitForPortAsync(port, TimeSpan.FromSeconds(10), cancellationToken);
        return await RunSystemAsync(
            system, $"qemu-nbd on a raw file, --cache={cache}",
            fio, new FioTarget.Nbd(port, "bench"), new Dictionary<string, int> { ["qemu-nbd"] = server.Pid }, cancellationToken);
    }

    /// <summary>Prefills the working set, then runs every job, sampling the servers' CPU time around each.</summary>
    private async Task<SystemResult> RunSystemAsync(
        string system, string description, FioRunner fio, FioTarget target, IReadOnlyDictionary<string, int> serverPids, CancellationToken cancellationToken)
    {
        var planned = _plan.JobsFor(system);
        // Not recorded: silos start with unoptimised code that the JIT recompiles under load, so short jobs on a fresh
        // cluster would partly measure the compiler. Every system gets the same warm-up, baselines included.
        progress.WriteLine($"bench: {system}: warm-up, {_plan.WarmupSeconds} s of {FioJob.RandWriteQd32.Name} (not recorded)");
        await fio.RunAsync(FioJob.RandWriteQd32, target, _plan.WorkingSetBytes, _plan.WarmupSeconds, cancellationToken);
        if (planned.Any(j => !j.IsWrite))
        {
            progress.WriteLine($"bench: {system}: prefill {_plan.WorkingSetBytes >> 20} MiB");
            await fio.RunAsync(FioJob.SeqWrite, target, _plan.WorkingSetBytes, runtimeSeconds: null, cancellationToken);
        }

        var jobs = new List<JobResult>();
        foreach (var job in planned)
        {
            var runs = new List<JobResult>();
            for (var run = 1; run <= _plan.Repeat; run++)
            {
                var before = CpuSample.Take(serverPids);
                FioMeasurement measured;
                try
                {
                    measured = await fio.RunAsync(job, target, _plan.WorkingSetBytes, _plan.RuntimeSeconds, cancellationToken);
                }
                catch (BenchException e)
                {
                    // One failed fio run (a dropped connection, seen once with nbdkit) should not throw away a long run;
                    // a server that is really gone fails the second attempt too, and that ends the bench.
                    progress.WriteLine($"bench: {system} {job.Name}: {e.Message}; running it once more");
                    before = CpuSample.Take(serverPids);
                    measured = await fio.RunAsync(job, target, _plan.WorkingSetBytes, _plan.RuntimeSeconds, cancellationToken);
                }

                var cpuSeconds = CpuSample.Take(serverPids).SecondsSince(before);
                double? cpuPerGiB = serverPids.Count == 0 ? null : cpuSeconds / (measured.IoBytes / (double)(1L << 30));
                runs.Add(new JobResult(job.Name, measured, cpuPerGiB));
                var of = _plan.Repeat > 1 ? $" (run {run}/{_plan.Repeat})" : "";
                progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"bench: {system,-20} {job.Name,-18} {measured.Iops,9:0} IOPS {measured.BandwidthMBps,8:0.0} MB/s  p50 {measured.ClatP50Us,8:0} us  p99 {measured.ClatP99Us,8:0} us{(cpuPerGiB is { } c ? $"  {c:0.00} CPU s/GiB" : "")}{of}"));
            }

            jobs.Add(JobResult.MedianOf(runs));
        }

        return new SystemResult(system, description, jobs);
    }

    /// <summary>
    /// Reads served by the slower tiers, each one pass over the working set (every block read once, so no block comes
    /// from a cache the pass itself filled): cold, with every compute node's cache dropped, read through compute-1 (from
    /// the storage silos' log or extents); then peer, read through compute-2, which takes the volume over and fetches
    /// each block from compute-1's cache. Each job names the tiers that actually answered, from compute counters.
    /// </summary>
    private async Task<List<JobResult>> RunReadTiersAsync(
        LocalCluster cluster, ClusterLayout layout, FioRunner fio, IReadOnlyDictionary<string, int> pids, Guid volumeId, CancellationToken cancellationToken)
    {
        var computes = layout.OfRole(NodeRoles.Compute).ToList();
        var results = new List<JobResult>();
        await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancellationToken);
        foreach (var node in computes)
        {
            await client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(node.Name)).EvictVolumeAsync(volumeId);
        }

        results.Add(await RunTierAsync(client, FioJob.RandReadQd32Cold, computes[0], fio, pids, cancellationToken));
        if (computes.Count < 2)
        {
            progress.WriteLine("bench: reads from a peer need --compute 2 or more; not measured");
            return results;
        }

        results.Add(await RunTierAsync(client, FioJob.RandReadQd32Peer, computes[1], fio, pids, cancellationToken));
        return results;
    }

    private async Task<JobResult> RunTierAsync(
        ConvergeClient client, FioJob job, NodeRecord node, FioRunner fio, IReadOnlyDictionary<string, int> pids, CancellationToken cancellationToken)
    {
        var counters = client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(node.Name));
        var statsBefore = await counters.GetStatsAsync();
        var cpuBefore = CpuSample.Take(pids);
        var measured = await fio.RunAsync(job, new FioTarget.Nbd(node.NbdPort, VolumeName), _plan.WorkingSetBytes, runtimeSeconds: null, cancellationToken);
        var cpuSeconds = CpuSample.Take(pids).SecondsSince(cpuBefore);
        var servedFrom = ServedFrom(statsBefore, await counters.GetStatsAsync(), node.Name);
        progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench: {BenchSystems.Converge,-20} {job.Name,-18} {measured.Iops,9:0} IOPS  p50 {measured.ClatP50Us,8:0} us  p99 {measured.ClatP99Us,8:0} us; {servedFrom}"));
        return new JobResult(job.Name, measured, cpuSeconds / (measured.IoBytes / (double)(1L << 30)), servedFrom);
    }

    /// <summary>The share of block reads each tier of <paramref name="node"/> answered between two samples of its counters.</summary>
    public static string ServedFrom(CacheNodeStats before, CacheNodeStats after, string node) =>
        after.TierSharesSince(before) is { Length: > 0 } shares ? $"served by {node}: {shares}" : $"served by {node}: no block reads counted";

    private LocalCluster NewCluster(string directory) =>
        new(repositoryRoot, directory, new PrefixWriter(progress, "bench: "))
        {
            ExtraSiloArguments = options.LogBandwidthMb > 0 ? ["--log-bandwidth-mb", options.LogBandwidthMb.ToString(CultureInfo.InvariantCulture)] : [],
        };

    private async Task<Guid> CreateVolumeAsync(ConvergeClient client, string name)
    {
        var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(name, _plan.VolumeSizeBytes, VolumeRules.DefaultBlockSizeBytes);
        return created.Ok ? created.Volume!.VolumeId : throw new BenchException($"could not create the bench volume {name}: {created.Message}");
    }

    private static void RequireTools(params string[] tools)
    {
        foreach (var tool in tools)
        {
            if (FindOnPath(tool) is null)
            {
                throw new BenchException($"{tool} is not installed (on Debian: apt-get install fio nbdkit qemu-utils)");
            }
        }
    }

    private static string CreateScratchDirectory()
    {
        var directory = Path.Combine(Path.GetTempPath(), "converge-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        return directory;
    }

    private void RemoveScratchDirectory(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException e)
        {
            progress.WriteLine($"bench: could not remove {directory}: {e.Message}");
        }
    }

    /// <summary>A throwaway cluster: SIGKILL by pid is quick and leaves nothing that matters.</summary>
    private static async Task KillClusterAsync(LocalCluster cluster)
    {
        foreach (var node in cluster.Layout?.Nodes ?? [])
        {
            if (SiloProcess.IsRunning(node.Pid, node.Name))
            {
                SiloProcess.Kill(node.Pid);
                await SiloProcess.WaitForExitAsync(node.Pid, node.Name, TimeSpan.FromSeconds(10));
            }
        }
    }

    /// <summary>A port offset at which every port of the bench cluster is free, so a developer's own cluster is never touched.</summary>
    private static int FreePortOffset(int compute, int storage) =>
        ClusterLayout.FindFreePortOffset(3000, 20, compute, storage)
            ?? throw new BenchException("found no free block of ports for the bench cluster");

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private string GitCommit()
    {
        try
        {
            var start = new ProcessStartInfo("git", ["-C", repositoryRoot, "rev-parse", "--short", "HEAD"]) { RedirectStandardOutput = true, UseShellExecute = false };
            using var git = Process.Start(start)!;
            var commit = git.StandardOutput.ReadToEnd().Trim();
            return git.WaitForExit(5000) && git.ExitCode == 0 ? commit : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    /// <summary>The 1, 5 and 15 minute load averages: figures from a busy machine are not comparable to a quiet one.</summary>
    private static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    private static string CpuModel() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) is { } line
            ? line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()
            : "unknown";
}

/// <summary>Indents the cluster's own progress lines under the bench's.</summary>
internal sealed class PrefixWriter(TextWriter inner, string prefix) : TextWriter
{
    public override System.Text.Encoding Encoding => inner.Encoding;

    public override void WriteLine(string? value) => inner.WriteLine(prefix + value?.TrimStart());

    public override void Write(char value) => inner.Write(value);
}
