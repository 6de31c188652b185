using System.Diagnostics;
using System.Globalization;
using System.Text;
using Converge.Client;
using Converge.Client.Local;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Volumes;

namespace Converge.Benchmarks;

/// <summary>
/// Write-resume time after a storage silo is killed, one fault at a time on an otherwise quiet cluster (1 compute + 3
/// storage): a writer keeps 4 KiB writes going at queue depth 4; each round SIGKILLs a mirror of the volume's open
/// segment (never the primary, storage-1), measures the time from the kill to the acknowledgement of the first write
/// issued after it, and the longest gap between two acknowledgements around it; then restarts the silo, waits for it
/// to join and for writes to settle. Prints a markdown section; <c>--record</c> appends it to BENCHMARKS.md.
/// </summary>
public static class FailoverBenchmark
{
    private const int BlockBytes = 4096;
    private const int Depth = 4;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(4);

    public static async Task<int> RunAsync(int rounds, bool record)
    {
        var root = SiloBinaries.FindRepositoryRoot();
        var data = Path.Combine(Path.GetTempPath(), "converge-failover-" + Guid.NewGuid().ToString("N")[..8]);
        var offset = ClusterLayout.FindFreePortOffset(7000, 20, 1, 3)
            ?? throw new InvalidOperationException("no free block of loopback ports for the benchmark cluster");
        var cluster = new LocalCluster(root, data, TextWriter.Null);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(5) + (rounds * TimeSpan.FromMinutes(1)));
        try
        {
            Console.Error.WriteLine($"failover: starting 1 compute + 3 storage silos in {data}");
            await cluster.UpAsync(new UpOptions(Compute: 1, Storage: 3, PortOffset: offset), cancel.Token);
            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancel.Token);
            var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("failover", 1L << 30, BlockBytes);
            if (!created.Ok)
            {
                throw new InvalidOperationException("cannot create the benchmark volume: " + created.Message);
            }

            await using var volume = await VolumeHandle.OpenAsync(client.Cluster, "failover", "compute-1");
            var writer = new AckRecorder();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token);
            var writing = Enumerable.Range(0, Depth).Select(w => Task.Run(() => WriteLoopAsync(volume, writer, w, stop.Token))).ToArray();
            var results = new List<(string Node, double ResumeMs, double GapMs)>();
            try
            {
                await Task.Delay(Settle, cancel.Token);
                for (var round = 0; round < rounds; round++)
                {
                    var open = await OpenSegmentAsync(client, cancel.Token);
                    var victim = open.MirrorA != "storage-1" ? open.MirrorA : open.MirrorB;
                    var killedAt = Stopwatch.GetTimestamp();
                    cluster.Kill(victim);
                    var resumed = await writer.FirstAckIssuedAfterAsync(killedAt, TimeSpan.FromSeconds(60), cancel.Token);
                    var resumeMs = Stopwatch.GetElapsedTime(killedAt, resumed).TotalMilliseconds;
                    await Task.Delay(TimeSpan.FromSeconds(1), cancel.Token);
                    var gapMs = writer.LongestGapMs(killedAt - (long)(Stopwatch.Frequency * 0.5), Stopwatch.GetTimestamp());
                    results.Add((victim, resumeMs, gapMs));
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"failover: round {round + 1}: killed {victim}, writes resumed after {resumeMs:0} ms (longest gap {gapMs:0} ms)"));
                    await cluster.StartNodeAsync(victim, cancel.Token);
                    await Task.Delay(Settle, cancel.Token);
                }
            }
            finally
            {
                await stop.CancelAsync();
                await Task.WhenAll(writing);
            }

            await BenchmarkEnvironment.PublishAsync(root, "failover", Section(rounds, results, writer), record);
            return 0;
        }
        finally
        {
            await BenchmarkEnvironment.TearDownAsync(cluster, data);
        }
    }

    /// <summary>The volume's open segment; none is catalogued for a moment while the writer moves to a new one.</summary>
    private static async Task<SegmentRecord> OpenSegmentAsync(ConvergeClient client, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            if ((await client.Cluster.GetGrain<IVolumeGrain>("failover").GetSegmentsAsync()).LastOrDefault(s => !s.Sealed) is { } open)
            {
                return open;
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new InvalidOperationException("the volume had no open segment for 10 s");
    }

    private static async Task WriteLoopAsync(VolumeHandle volume, AckRecorder writer, int worker, CancellationToken stop)
    {
        var rng = new Random(worker + 1);
        var payload = new byte[BlockBytes];
        rng.NextBytes(payload);
        while (!stop.IsCancellationRequested)
        {
            var issued = Stopwatch.GetTimestamp();
            IoStatus status;
            try
            {
                status = await volume.WriteAsync(rng.NextInt64(65536) * BlockBytes, payload);
                if (status != IoStatus.Ok)
                {
                    writer.NoteFailure(status.ToString());
                }
            }
            catch (Exception e) when (e is OrleansException or TimeoutException)
            {
                status = IoStatus.IoError;
                writer.NoteFailure(e.GetType().Name);
            }

            writer.Record(issued, Stopwatch.GetTimestamp(), status == IoStatus.Ok);
        }
    }

    private static string Section(int rounds, List<(string Node, double ResumeMs, double GapMs)> results, AckRecorder writer)
    {
        var resume = results.Select(r => r.ResumeMs).Order().ToArray();
        var gaps = results.Select(r => r.GapMs).Order().ToArray();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: write-resume after a storage silo is killed (`dotnet run -c Release --project Benchmarks -- failover {rounds}`)");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Commit `{BenchmarkEnvironment.GitHead()}`; {Environment.ProcessorCount} CPUs; 1 compute + 3 storage silos, one fault at a time: a writer at queue depth {Depth} (4 KiB), SIGKILL of a mirror of the open segment (not storage-1), restart, {Settle.TotalSeconds:0} s to settle; {writer.Acknowledged} writes acknowledged, {writer.Failed} failed ({writer.Failures}); load average at end {BenchmarkEnvironment.LoadAverage()}. Resume = kill to the acknowledgement of the first write issued after it; gap = longest time without any acknowledgement around the kill.");
        text.AppendLine();
        text.AppendLine("| rounds | resume p50 ms | resume max ms | gap p50 ms | gap max ms | per round (node: resume ms) |");
        text.AppendLine("| ---: | ---: | ---: | ---: | ---: | --- |");
        text.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| {results.Count} | {Median(resume):0} | {resume.LastOrDefault():0} | {Median(gaps):0} | {gaps.LastOrDefault():0} | {string.Join(", ", results.Select(r => $"{r.Node}: {r.ResumeMs:0}"))} |"));
        return text.ToString();
    }

    private static double Median(double[] sorted) => sorted.Length == 0 ? 0 : sorted[sorted.Length / 2];

    /// <summary>Issue and completion times of every write, for resume times and gaps.</summary>
    private sealed class AckRecorder
    {
        private readonly Lock _lock = new();
        private readonly List<(long Issued, long Done)> _acks = new(1 << 16);
        private long _failed;
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _failures = new();

        /// <summary>Failures by exception type or by the status answered.</summary>
        public string Failures => _failures.IsEmpty ? "none" : string.Join(", ", _failures.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} x{p.Value}"));

        public void NoteFailure(string what) => _failures.AddOrUpdate(what, 1, (_, n) => n + 1);

        public long Acknowledged
        {
            get
            {
                lock (_lock)
                {
                    return _acks.Count;
                }
            }
        }

        public long Failed => Interlocked.Read(ref _failed);

        public void Record(long issued, long done, bool ok)
        {
            if (!ok)
            {
                Interlocked.Increment(ref _failed);
                return;
            }

            lock (_lock)
            {
                _acks.Add((issued, done));
            }
        }

        public async Task<long> FirstAckIssuedAfterAsync(long after, TimeSpan patience, CancellationToken cancellationToken)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(patience.TotalSeconds * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                lock (_lock)
                {
                    var first = _acks.Where(a => a.Issued >= after).Select(a => a.Done).DefaultIfEmpty(0).Min();
                    if (first != 0)
                    {
                        return first;
                    }
                }

                await Task.Delay(10, cancellationToken);
            }

            throw new TimeoutException($"no write issued after the kill was acknowledged within {patience.TotalSeconds:0} s");
        }

        public double LongestGapMs(long from, long to)
        {
            long[] done;
            lock (_lock)
            {
                done = [.. _acks.Where(a => a.Done >= from && a.Done <= to).Select(a => a.Done).Order()];
            }

            var longest = done.Length == 0 ? to - from : Math.Max(done[0] - from, to - done[^1]);
            for (var i = 1; i < done.Length; i++)
            {
                longest = Math.Max(longest, done[i] - done[i - 1]);
            }

            return longest * 1000.0 / Stopwatch.Frequency;
        }
    }
}
