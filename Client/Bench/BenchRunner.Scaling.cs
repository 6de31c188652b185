using System.Diagnostics;
using System.Globalization;
using Converge.Client.Local;
using Converge.Cluster;

namespace Converge.Client.Bench;

/// <summary>One cluster shape's aggregate figures for one job in a scaling run.</summary>
/// <param name="P50Us">The highest median latency among the fio processes (one per compute silo).</param>
public sealed record ScalingPoint(int Compute, int Storage, string Job, double Iops, double BandwidthMBps, double P50Us, double P99Us, double ServerCpuSeconds, double CpuUsPerIo);

public sealed record ScalingRun(
    DateTimeOffset StartedAt, string Commit, string Command, int Cpus, string CpuModel, string NvramMode, int LogBandwidthMb,
    int RuntimeSecondsPerJob, int VolumesPerCompute, IReadOnlyList<ScalingPoint> Points, double DurationSeconds, string LoadAverageAtStart, string LoadAverageAtEnd);

public sealed partial class BenchRunner
{
    /// <summary>The cluster shapes of a scaling run: storage 2, 3, 4 with one compute silo, then two compute silos.</summary>
    public static readonly (int Compute, int Storage)[] ScalingShapes = [(1, 2), (1, 3), (1, 4), (2, 2), (2, 4)];

    /// <summary>
    /// Volumes per compute silo: a volume writes to one mirror pair at a time, so spreading the load over storage silos
    /// takes several volumes. Each gets a quarter of the queue depth: 32 in flight per compute silo in all.
    /// </summary>
    private const int ScalingVolumesPerCompute = 4;

    private static readonly FioJob[] ScalingJobs =
    [
        new("randwrite-4k-qd32", "randwrite", 4096, 32 / ScalingVolumesPerCompute),
        new("randread-4k-qd32", "randread", 4096, 32 / ScalingVolumesPerCompute),
    ];

    /// <summary>Runs the 4 KiB random jobs on a fresh cluster of each shape, fio on every compute silo at once, and sums them.</summary>
    public async Task<ScalingRun> RunScalingAsync(CancellationToken cancellationToken)
    {
        RequireTools("fio");
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        var load = LoadAverage();
        var directory = CreateScratchDirectory();
        var perVolume = _plan.WorkingSetBytes / ScalingVolumesPerCompute;
        progress.WriteLine($"bench: scaling over {ScalingShapes.Length} cluster shapes; {ScalingVolumesPerCompute} volumes per compute silo, " +
            $"{perVolume >> 20} MiB each, {_plan.RuntimeSeconds} s per job{(options.LogBandwidthMb > 0 ? $", log capped at {options.LogBandwidthMb} MB/s per storage silo" : "")}; in {directory}");
        var points = new List<ScalingPoint>();
        try
        {
            var shape = 0;
            foreach (var (compute, storage) in ScalingShapes)
            {
                points.AddRange(await RunShapeAsync(Path.Combine(directory, $"shape-{++shape}"), compute, storage, perVolume, cancellationToken));
            }
        }
        finally
        {
            RemoveScratchDirectory(directory);
        }

        return new ScalingRun(started, GitCommit(), command, Environment.ProcessorCount, CpuModel(), options.NvramMode, options.LogBandwidthMb,
            _plan.RuntimeSeconds, ScalingVolumesPerCompute, points, clock.Elapsed.TotalSeconds, load, LoadAverage());
    }

    private async Task<List<ScalingPoint>> RunShapeAsync(string directory, int compute, int storage, long perVolume, CancellationToken cancellationToken)
    {
        var cluster = NewCluster(Path.Combine(directory, "cluster"));
        var offset = FreePortOffset(compute, storage);
        progress.WriteLine($"bench: {compute} compute + {storage} storage silos (port offset {offset})");
        var points = new List<ScalingPoint>();
        try
        {
            var layout = await cluster.UpAsync(new UpOptions(compute, storage, Postgres: false, offset, options.NvramMode), cancellationToken);
            var computes = layout.OfRole(NodeRoles.Compute).ToList();
            var volumes = computes.ToDictionary(c => c.Name, c => Enumerable.Range(1, ScalingVolumesPerCompute).Select(v => $"{c.Name}-v{v}").ToArray());
            await using (var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancellationToken))
            {
                foreach (var name in volumes.Values.SelectMany(v => v))
                {
                    await CreateVolumeAsync(client, name);
                }
            }

            var pids = layout.Nodes.ToDictionary(n => n.Name, n => n.Pid);
            var fio = new FioRunner(directory);
            // Queue depth 4 of 1 MiB writes on every volume: under a log bandwidth cap more than the logs take in the 2 s
            // append timeout (the volumes' append windows hold it back at the compute silos), but, with eight volumes on
            // two silos capped at 8 MB/s, a queue that drains in about 4 s: at queue depth 8 it took over 8 s, and writes
            // waiting longer than the NBD server's 10 s call timeout fail with EIO.
            var prefill = new FioJob("prefill", "write", 1 << 20, 4);
            await Task.WhenAll(computes.Select(c => fio.RunManyAsync(prefill, c.NbdPort, volumes[c.Name], perVolume, runtimeSeconds: null, cancellationToken)));
            await Task.WhenAll(computes.Select(c => fio.RunManyAsync(ScalingJobs[0], c.NbdPort, volumes[c.Name], perVolume, _plan.WarmupSeconds, cancellationToken)));
            foreach (var job in ScalingJobs)
            {
                var before = CpuSample.Take(pids);
                var measured = await Task.WhenAll(computes.Select(c => fio.RunManyAsync(job, c.NbdPort, volumes[c.Name], perVolume, _plan.RuntimeSeconds, cancellationToken)));
                var cpu = CpuSample.Take(pids).SecondsSince(before);
                var ios = measured.Sum(m => m.IoBytes) / (double)job.BlockSizeBytes;
                var point = new ScalingPoint(compute, storage, job.Name, measured.Sum(m => m.Iops), measured.Sum(m => m.BandwidthMBps),
                    measured.Max(m => m.ClatP50Us), measured.Max(m => m.ClatP99Us), cpu, ios > 0 ? cpu * 1e6 / ios : double.NaN);
                points.Add(point);
                progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"bench: compute {compute} storage {storage} {job.Name,-18} {point.Iops,9:0} IOPS  p50 {point.P50Us,8:0} us  p99 {point.P99Us,8:0} us  {point.CpuUsPerIo:0} CPU us/IO"));
            }

            return points;
        }
        finally
        {
            await KillClusterAsync(cluster);
        }
    }
}
