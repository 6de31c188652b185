using System.Diagnostics;
using System.Globalization;
using System.Text;
using Converge.Client;
using Converge.Client.Local;
using Converge.DataPath;
using Converge.Volumes;

namespace Converge.Benchmarks;

/// <summary>
/// 4 KiB random reads through the client API at queue depth 1 and 32, served from each tier of the read path in turn:
/// local RAM, local flash (a working set four times the RAM cache), the previous holder's cache (a peer, after the
/// volume moves to the other compute node) and storage (every cache dropped). Each row names the tiers that actually
/// served it, from the compute nodes' counters, so the table shows where the reads came from.
/// </summary>
public static class ClientReadBenchmark
{
    private const int BlockBytes = 4096;
    private const long VolumeBytes = 1L << 30;
    private const int RamCacheMb = 16;
    private const long HotBytes = 8L << 20;
    private const long WideOffset = 64L << 20;
    private const long WideBytes = 64L << 20;

    public static async Task<int> RunAsync(int seconds, bool record)
    {
        var root = SiloBinaries.FindRepositoryRoot();
        var data = Path.Combine(Path.GetTempPath(), "converge-clientread-" + Guid.NewGuid().ToString("N")[..8]);
        var offset = ClusterLayout.FindFreePortOffset(7300, 20, 2, 2)
            ?? throw new InvalidOperationException("no free block of loopback ports for the benchmark cluster");
        // A small RAM cache puts the wide set on flash.
        var cluster = new LocalCluster(root, data, TextWriter.Null)
        {
            ExtraSiloArguments = ["--cache-ram-mb", RamCacheMb.ToString(CultureInfo.InvariantCulture)],
        };
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        try
        {
            Console.Error.WriteLine($"clientread: starting 2 compute + 2 storage silos in {data} (RAM cache {RamCacheMb} MiB)");
            await cluster.UpAsync(new UpOptions(Compute: 2, Storage: 2, PortOffset: offset), cancel.Token);
            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancel.Token);
            var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("bench", VolumeBytes, BlockBytes);
            if (!created.Ok)
            {
                throw new InvalidOperationException("cannot create the benchmark volume: " + created.Message);
            }

            var rows = new List<string>();
            var first = await VolumeHandle.OpenAsync(client.Cluster, "bench", "compute-1");
            Console.Error.WriteLine("clientread: writing the hot (8 MiB) and wide (64 MiB) sets on compute-1");
            await FillAsync(first, 0, HotBytes);
            await FillAsync(first, WideOffset, WideBytes);
            await SweepAsync(first, 0, HotBytes);

            foreach (var depth in new[] { 1, 32 })
            {
                rows.Add(await MeasureAsync(client, "local RAM", first, "compute-1", 0, HotBytes, depth, seconds, null));
            }

            foreach (var depth in new[] { 1, 32 })
            {
                rows.Add(await MeasureAsync(client, "local flash", first, "compute-1", WideOffset, WideBytes, depth, seconds, null));
            }

            await first.DisposeAsync();
            await using var moved = await VolumeHandle.OpenAsync(client.Cluster, "bench", "compute-2");
            foreach (var depth in new[] { 1, 32 })
            {
                // Each pass starts with compute-2's own cache empty, so first reads go to compute-1.
                rows.Add(await MeasureAsync(client, "peer (previous holder)", moved, "compute-2", WideOffset, WideBytes, depth, seconds, ["compute-2"]));
            }

            foreach (var depth in new[] { 1, 32 })
            {
                rows.Add(await MeasureAsync(client, "storage (caches dropped)", moved, "compute-2", WideOffset, WideBytes, depth, seconds, ["compute-1", "compute-2"]));
            }

            await BenchmarkEnvironment.PublishAsync(root, "clientread", Section(seconds, rows), record);

            return 0;
        }
        finally
        {
            await BenchmarkEnvironment.TearDownAsync(cluster, data);
        }
    }

    private static async Task FillAsync(VolumeHandle volume, long start, long length)
    {
        var payload = new byte[1 << 20];
        var rng = new Random(7);
        for (var at = start; at < start + length; at += payload.Length)
        {
            rng.NextBytes(payload);
            var status = await volume.WriteAsync(at, payload);
            if (status != IoStatus.Ok)
            {
                throw new InvalidOperationException($"fill write at {at} failed: {status}");
            }
        }
    }

    private static async Task SweepAsync(VolumeHandle volume, long start, long length)
    {
        for (var at = start; at < start + length; at += BlockBytes)
        {
            await volume.ReadAsync(at, BlockBytes);
        }
    }

    /// <summary>
    /// Reads each block of the range at most once, in a random order, for at most <paramref name="seconds"/>; caches of
    /// <paramref name="evictFirst"/> nodes are dropped first so the pass starts cold there.
    /// </summary>
    private static async Task<string> MeasureAsync(ConvergeClient client, string tier, VolumeHandle volume, string reader, long start, long length, int depth, int seconds, string[]? evictFirst)
    {
        foreach (var node in evictFirst ?? [])
        {
            await client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(node)).EvictVolumeAsync("bench");
        }

        Console.Error.WriteLine($"clientread: {tier}, queue depth {depth}");
        var blocks = length / BlockBytes;
        var order = Enumerable.Range(0, (int)blocks).Select(b => (long)b).ToArray();
        new Random(depth).Shuffle(order);
        var before = await client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(reader)).GetStatsAsync();
        var latencies = new List<double>[depth];
        var next = -1L;
        long failed = 0;
        var clock = Stopwatch.StartNew();
        var workers = new Task[depth];
        for (var w = 0; w < depth; w++)
        {
            var samples = latencies[w] = new List<double>(1 << 14);
            workers[w] = Task.Run(async () =>
            {
                long i;
                while (clock.Elapsed.TotalSeconds < seconds && (i = Interlocked.Increment(ref next)) < order.Length)
                {
                    var started = Stopwatch.GetTimestamp();
                    var reply = await volume.ReadAsync(start + (order[i] * BlockBytes), BlockBytes);
                    if (reply.Status == IoStatus.Ok)
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
        var elapsed = clock.Elapsed.TotalSeconds;
        var after = await client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(reader)).GetStatsAsync();
        var all = latencies.SelectMany(l => l).Order().ToArray();
        var served = Split(before, after);
        return all.Length == 0
            ? $"| {tier} | {depth} | 0 | - | - | {served} | {failed} |"
            : string.Create(CultureInfo.InvariantCulture,
                $"| {tier} | {depth} | {all.Length / elapsed:0} | {all[all.Length / 2]:0} | {all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))]:0} | {served} | {failed} |");
    }

    private static string Split(CacheNodeStats before, CacheNodeStats after) =>
        after.TierSharesSince(before) is { Length: > 0 } shares ? shares : "none";

    private static string Section(int seconds, List<string> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: read path per tier (`dotnet run -c Release --project Benchmarks -- clientread {seconds}`)");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Commit `{BenchmarkEnvironment.GitHead()}`; {Environment.ProcessorCount} CPUs; 2 compute + 2 storage silos, RAM cache {RamCacheMb} MiB per compute node; 4 KiB random reads through `VolumeHandle.ReadAsync` (client -> gateway -> controller), each block at most once per pass, at most {seconds} s per pass. RAM: an 8 MiB set on the node that wrote it; flash: a 64 MiB set (4x the RAM cache) on that node; peer: the 64 MiB set on the other compute node right after the volume moved there, its own cache emptied before each pass; storage: both nodes' caches emptied. \"Served by\" is the split of the reading node's counters over the pass. Load average at end {BenchmarkEnvironment.LoadAverage()}.");
        text.AppendLine();
        text.AppendLine("| tier | qd | IOPS | p50 us | p99 us | served by | failed |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | --- | ---: |");
        foreach (var row in rows)
        {
            text.AppendLine(row);
        }

        return text.ToString();
    }
}
