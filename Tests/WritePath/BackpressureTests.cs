using System.Diagnostics;
using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>
/// Real silo processes whose logs are capped at 4 MB/s (<c>--log-bandwidth-mb 4</c>): more large writes at once than
/// the log takes in 2 s (the append timeout) wait at the compute node instead of timing out in the storage silos'
/// queues, so every one is acknowledged and reads back.
/// </summary>
public sealed class BackpressureTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;
    private const int LogMegabytesPerSecond = 4;

    /// <summary>About 3 s of the capped log: all sent at once, the last would wait past the 2 s append timeout.</summary>
    private const int Writes = 12;

    [Fact]
    public async Task LargeWritesBeyondWhatASlowLogTakesIn2Seconds_WaitAndAreAllAcknowledged()
    {
        await using var cluster = await TestCluster.StartAsync(
            output, compute: 1, storage: 2, siloArguments: ["--log-bandwidth-mb", LogMegabytesPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await using var client = await cluster.ConnectAsync();
        var grains = client.Cluster;
        var created = await grains.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("slow-log", 64L * MiB, 4096);
        Assert.True(created.Ok, created.Message);
        await using var volume = await VolumeHandle.OpenAsync(grains, "slow-log", "compute-1");
        var data = new byte[Writes * MiB];
        new Random(7).NextBytes(data);

        var clock = Stopwatch.StartNew();
        var statuses = await Task.WhenAll(Enumerable.Range(0, Writes).Select(i => volume.WriteAsync((long)i * MiB, data.AsMemory(i * MiB, MiB))));
        var took = clock.Elapsed;
        output.WriteLine($"{Writes} MiB in {took.TotalSeconds:F1} s with the log capped at {LogMegabytesPerSecond} MB/s: {string.Join(", ", statuses)}");

        var segments = await grains.GetGrain<IVolumeGrain>("slow-log").GetSegmentsAsync();
        output.WriteLine($"segments: {string.Join(", ", segments.Select(s => $"{s.SegmentId:N} on {s.MirrorA}+{s.MirrorB}{(s.Sealed ? " sealed" : "")}"))}");

        Assert.All(statuses, s => Assert.Equal(IoStatus.Ok, s));
        // Slowness is not a fault: no append timed out, so the volume still writes to the segment it started with.
        Assert.Single(segments);
        Assert.False(segments[0].Sealed, "the first segment was sealed: an append was taken for a mirror fault");
        // The cap held: the writes really did take longer than the append timeout, so the test exercised the waiting.
        Assert.True(took > TimeSpan.FromSeconds(2), $"{Writes} MiB took {took.TotalSeconds:F1} s, so the log was not the bottleneck");
        for (var i = 0; i < Writes; i++)
        {
            var read = await volume.ReadAsync((long)i * MiB, MiB);
            Assert.Equal(IoStatus.Ok, read.Status);
            Assert.True(data.AsSpan(i * MiB, MiB).SequenceEqual(read.Data.AsSpan(0, MiB)), $"MiB {i} read back different bytes");
        }
    }
}
