using System.Diagnostics;
using System.Globalization;
using System.Text;
using Converge.Client;
using Converge.Client.Bench;
using Converge.Client.Local;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Storage;
using Converge.Volumes;

namespace Converge.Benchmarks;

/// <summary>
/// 4 KiB random writes through the client API (no NBD) against a fresh local cluster of 1 compute + 3 storage silos,
/// at queue depth 1 and 32: IOPS, p50/p99 latency of acknowledged writes, and the mean group-commit batch (records
/// per fdatasync) the storage logs saw, beside this disk's own 4 KiB write + fdatasync rate measured by fio in the
/// same run. Prints a markdown section; <c>--record</c> appends it to BENCHMARKS.md.
/// </summary>
public static class ClientWriteBenchmark
{
    private const int BlockBytes = 4096;
    private const long VolumeBytes = 1L << 30;
    private const long WorkingSetBytes = 256L << 20;

    public static async Task<int> RunAsync(int seconds, bool record)
    {
        var root = SiloBinaries.FindRepositoryRoot();
        var data = Path.Combine(Path.GetTempPath(), "converge-clientwrite-" + Guid.NewGuid().ToString("N")[..8]);
        var offset = ClusterLayout.FindFreePortOffset(7000, 20, 1, 3)
            ?? throw new InvalidOperationException("no free block of loopback ports for the benchmark cluster");
        var cluster = new LocalCluster(root, data, TextWriter.Null);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        try
        {
            Console.Error.WriteLine($"clientwrite: starting 1 compute + 3 storage silos in {data}");
            await cluster.UpAsync(new UpOptions(Compute: 1, Storage: 3, PortOffset: offset), cancel.Token);
            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancel.Token);
            var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("bench", VolumeBytes, BlockBytes);
            if (!created.Ok)
            {
                throw new InvalidOperationException("cannot create the benchmark volume: " + created.Message);
            }

            await using var volume = await VolumeHandle.OpenAsync(client.Cluster, "bench", "compute-1");
            var storage = cluster.Layout!.OfRole(NodeRoles.Storage).Select(n => n.Name).ToArray();
            var rows = new List<string>();
            foreach (var depth in new[] { 1, 32 })
            {
                Console.Error.WriteLine($"clientwrite: queue depth {depth}, {seconds} s");
                var before = await LogTotalsAsync(client, storage);
                var run = await WriteAsync(volume, depth, TimeSpan.FromSeconds(seconds));
                var after = await LogTotalsAsync(client, storage);
                var batches = after.Commits - before.Commits;
                var batch = batches == 0 ? 0 : (double)(after.Records - before.Records) / batches;
                rows.Add(Row($"converge client API, qd{depth}", run.Iops, run.P50Us, run.P99Us, batch.ToString("0.0", CultureInfo.InvariantCulture), run.Failed));
            }

            Console.Error.WriteLine($"clientwrite: disk baseline (fio, 4 KiB write + fdatasync), {seconds} s");
            var fio = new FioRunner(data);
            var disk = await fio.RunAsync(new FioJob("disk-write-4k-fdatasync", "write", BlockBytes, 1), new FioTarget.DiskFile(Path.Combine(data, "disk-baseline.dat")), 64L << 20, seconds, cancel.Token);
            rows.Add(Row("disk: fio --rw=write --bs=4k --fdatasync=1 --direct=1", disk.Iops, disk.ClatP50Us + (disk.SyncP50Us ?? 0), disk.ClatP99Us, "1 (one fdatasync per write)", 0));

            await BenchmarkEnvironment.PublishAsync(root, "clientwrite", Section(seconds, rows), record);

            return 0;
        }
        finally
        {
            await BenchmarkEnvironment.TearDownAsync(cluster, data);
        }
    }

    private static async Task<(double Iops, double P50Us, double P99Us, long Failed)> WriteAsync(VolumeHandle volume, int depth, TimeSpan duration)
    {
        var latencies = new List<double>[depth];
        long failed = 0;
        var clock = Stopwatch.StartNew();
        var workers = new Task[depth];
        for (var w = 0; w < depth; w++)
        {
            var samples = latencies[w] = new List<double>(1 << 16);
            var rng = new Random(w + 1);
            workers[w] = Task.Run(async () =>
            {
                var payload = new byte[BlockBytes];
                rng.NextBytes(payload);
                while (clock.Elapsed < duration)
                {
                    var block = rng.NextInt64(WorkingSetBytes / BlockBytes);
                    var started = Stopwatch.GetTimestamp();
                    var status = await volume.WriteAsync(block * BlockBytes, payload);
                    if (status == IoStatus.Ok)
                    {
                        samples.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                    }
                    else
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
            });
        }

        await Task.WhenAll(workers);
        var all = latencies.SelectMany(l => l).Order().ToArray();
        if (all.Length == 0)
        {
            throw new InvalidOperationException($"no write was acknowledged at queue depth {depth} ({failed} failed)");
        }

        return (all.Length / clock.Elapsed.TotalSeconds, all[all.Length / 2], all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))], failed);
    }

    private static async Task<(long Commits, long Records)> LogTotalsAsync(ConvergeClient client, IEnumerable<string> nodes)
    {
        long commits = 0;
        long records = 0;
        foreach (var node in nodes)
        {
            var stats = await client.Cluster.GetGrain<IStorageNodeGrain>(NodeRoles.PinnedKey(node, IStorageNodeGrain.KeySuffix)).GetLogStatsAsync();
            commits += stats.GroupCommits;
            records += stats.CommittedRecords;
        }

        return (commits, records);
    }

    private static string Row(string system, double iops, double p50Us, double p99Us, string batch, long failed) =>
        string.Create(CultureInfo.InvariantCulture, $"| {system} | {iops:0} | {p50Us:0} | {p99Us:0} | {batch} | {failed} |");

    private static string Section(int seconds, List<string> rows)
    {
        var commit = BenchmarkEnvironment.GitHead();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: client-API write benchmark (`dotnet run -c Release --project Benchmarks -- clientwrite {seconds}`)");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Commit `{commit}`; {Environment.ProcessorCount} CPUs; 1 compute + 3 storage silos (fsync NVRAM), 4 KiB random writes over a 256 MiB range of a 1 GiB volume through `VolumeHandle.WriteAsync`, {seconds} s per queue depth; load average at end {BenchmarkEnvironment.LoadAverage()}. Batch = records per group commit (one write + one fdatasync) summed over the three storage logs.");
        text.AppendLine();
        text.AppendLine("| system | IOPS | p50 us | p99 us | records per fdatasync | failed |");
        text.AppendLine("| --- | ---: | ---: | ---: | --- | ---: |");
        foreach (var row in rows)
        {
            text.AppendLine(row);
        }

        return text.ToString();
    }
}
