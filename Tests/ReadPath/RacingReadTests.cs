using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
using static Converge.Tests.ReadPath.ReadPathSupport;

namespace Converge.Tests.ReadPath;

/// <summary>A read that races a write of the same block must never leave its older version behind in the cache.</summary>
public sealed class RacingReadTests(ITestOutputHelper output)
{
    // Two preads per log read: 1.6 s per mirror, below the 2 s mirror read timeout, far above a write and an eviction.
    private const int ReadDelayUs = 800_000;
    private const int SlowMirrorDelayUs = 5_000_000;
    private const long SealAfterBytes = 32L * 1024 * 1024;
    private const long FillerFirstBlock = 2 * SecondRegionBlock;

    [Fact]
    public async Task LogReadRacingAnOverwriteAndAnEviction_DoesNotCacheTheOldVersion_SoReadsAfterDestageAreCurrent()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 1, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        // Evictions name the volume by id: by name they would ask the control plane, whose node may be a delayed mirror.
        var volumeId = await CreateAsync(cluster, "race");
        var cache = cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key("compute-1"));
        await using var v = await VolumeHandle.OpenAsync(cluster, "race", "compute-1");
        await WriteAsync(v, 0, 1, 1);
        Assert.Equal(1, await cache.EvictAsync(volumeId, BlockBytes, 0, BlockBytes));

        // Block 0 now has to come from the log. Its segment's first mirror answers reads only after the controller gave up
        // on it (2 s), the second after 1.6 s more: a window of over 3 s. A log read runs synchronously in the segment's
        // grain, so the overwrite must land in another segment: this one is filled to its seal size first.
        var segment = Assert.Single(await cluster.GetGrain<Converge.Volumes.IVolumeGrain>("race").GetSegmentsAsync());
        Task<VolumeReadReply> racing;
        var delays = new List<PreadDelay>();
        try
        {
            delays.Add(await PreadDelay.AttachAsync(PidOf(c, segment.MirrorA), SlowMirrorDelayUs, TimeSpan.FromSeconds(20)));
            delays.Add(await PreadDelay.AttachAsync(PidOf(c, segment.MirrorB), ReadDelayUs, TimeSpan.FromSeconds(20)));

            const int fillerBlocks = 256;
            for (var i = 0; i < SealAfterBytes / (fillerBlocks * BlockBytes); i++)
            {
                await WriteAsync(v, FillerFirstBlock + (i * fillerBlocks), fillerBlocks, 1);
            }

            await TestCluster.WaitUntilAsync(
                async () => (await cluster.GetGrain<Converge.Volumes.IVolumeGrain>("race").GetSegmentsAsync()).Any(s => s.Sealed),
                TimeSpan.FromSeconds(20), "the segment holding version 1 of block 0 to be sealed");

            // The probe block of the destage wait below, in the same new segment as version 2 of block 0.
            await WriteAsync(v, SecondRegionBlock, 1, 1);
            var before = await StatsAsync(cluster, "compute-1");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            racing = v.ReadAsync(0, BlockBytes);
            await TestCluster.WaitUntilAsync(
                async () => (await StatsAsync(cluster, "compute-1")).Misses > before.Misses, TimeSpan.FromSeconds(10), "the racing read to miss the cache");

            // While that read is out: version 2 is acknowledged (and cached), then evicted.
            var missed = clock.ElapsedMilliseconds;
            await WriteAsync(v, 0, 1, 2);
            var written = clock.ElapsedMilliseconds;
            Assert.Equal(1, await cache.EvictAsync(volumeId, BlockBytes, 0, BlockBytes));
            output.WriteLine($"racing read missed the cache after {missed} ms; overwrite acknowledged at {written} ms, evicted at {clock.ElapsedMilliseconds} ms");
            Assert.False(racing.IsCompleted, "the racing read finished before the overwrite and eviction: no race was produced");
        }
        finally
        {
            foreach (var delay in delays)
            {
                delay.Dispose();
            }
        }

        // The racing read may answer either version (it overlapped the write); it read the log's version 1.
        var raced = await racing;
        Assert.Equal(IoStatus.Ok, raced.Status);
        Assert.Null(BlockPatternCheck(raced.Data!, 0, 1));

        // Once the segment is destaged and pruned, block 0 has no dirty entry: a cached version 1 would be served.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
        while (true)
        {
            await cache.EvictAsync(volumeId, BlockBytes, SecondRegionBlock * BlockBytes, BlockBytes);
            var round = await StatsAsync(cluster, "compute-1");
            await ReadExpectAsync(v, SecondRegionBlock, 1, 1);
            var done = await StatsAsync(cluster, "compute-1");
            if (done.LogReads == round.LogReads && done.ExtentReads == round.ExtentReads + 1)
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "the probe block was still read from the log 45 s after the writes: never destaged and pruned");
            await Task.Delay(250);
        }

        await ReadExpectAsync(v, 0, 1, 2);
    }

    private static int PidOf(TestCluster c, string node) => c.Layout.Nodes.Single(n => n.Name == node).Pid;

    private static string? BlockPatternCheck(byte[] data, long block, long version) =>
        WritePath.BlockPattern.Check(data, 7, block, version, version);
}
