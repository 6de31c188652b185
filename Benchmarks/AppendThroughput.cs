using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Log;

namespace Converge.Benchmarks;

/// <summary>
/// Committed 4 KiB appends per second against a real file (fdatasync per group commit) at concurrency 1 and 32,
/// with latency percentiles and the mean group-commit batch. Expected order: fdatasync rate &lt;= appends/s at 1 &lt;&lt; at 32.
/// </summary>
public static class AppendThroughput
{
    public static async Task RunAsync(string directory, TimeSpan duration)
    {
        foreach (var concurrency in new[] { 1, 32 })
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }

            Directory.CreateDirectory(directory);
            var options = new SiloLogOptions { ChunkSizeBytes = 256L * 1024 * 1024, NvramBudgetBytes = 2L * 1024 * 1024 * 1024 };
            using var log = SiloLog.Open(directory, PosixFileSystem.Instance, options);
            var volume = Guid.NewGuid();
            var latenciesUs = new List<double>[concurrency];
            var stop = Stopwatch.StartNew();
            var workers = new Task[concurrency];
            long sequence = 0;
            for (var w = 0; w < concurrency; w++)
            {
                var samples = latenciesUs[w] = new List<double>(1 << 16);
                var segment = Guid.NewGuid();
                workers[w] = Task.Run(async () =>
                {
                    var payload = new byte[4096];
                    Random.Shared.NextBytes(payload);
                    while (stop.Elapsed < duration)
                    {
                        var lsn = new Lsn(1, (ulong)Interlocked.Increment(ref sequence));
                        using var record = LogRecord.EncodePooled(LogRecordHeader.ForWrite(volume, lsn, segment, 0, payload.Length), payload);
                        var started = Stopwatch.GetTimestamp();
                        var result = await log.AppendCommittedAsync(record.Memory);
                        samples.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                        if (!result.IsCommitted)
                        {
                            throw new InvalidOperationException($"append refused: {result.Status}");
                        }
                    }
                });
            }

            await Task.WhenAll(workers);
            var elapsed = stop.Elapsed.TotalSeconds;
            var all = latenciesUs.SelectMany(l => l).Order().ToArray();
            var meanBatch = log.BatchCount == 0 ? 0 : (double)all.Length / log.BatchCount;
            Console.WriteLine(
                $"concurrency {concurrency,2}: {all.Length / elapsed,8:F0} appends/s (4 KiB), p50 {Percentile(all, 0.50),7:F0} us, " +
                $"p99 {Percentile(all, 0.99),7:F0} us, fdatasyncs {log.FlushCount / elapsed,6:F0}/s, mean batch {meanBatch:F1} records");
        }

        Directory.Delete(directory, recursive: true);
    }

    private static double Percentile(double[] sorted, double q) => sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
}
