using System.Diagnostics;
using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>
/// The client API when the compute node holding its volume dies: calls in flight fail soon after the node leaves the
/// cluster, not after their 10 s timeout, and a new handle on another node carries on with every acknowledged write.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class ClientFailoverTests(WritePathCluster cluster, ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task CallsInFlightToAComputeNodeThatDies_FailAsNodeLost_LongBeforeTheirTimeout()
    {
        await cluster.CreateVolumeAsync("node-lost", 16L << 20);
        var acknowledged = new byte[BlockPattern.BlockBytes];
        Random.Shared.NextBytes(acknowledged);
        var handle = await VolumeHandle.OpenAsync(cluster.Grains, "node-lost", "compute-2");
        Assert.Equal(IoStatus.Ok, await handle.WriteAsync(0, acknowledged));

        // Hold one mirror's commits, so that the next writes stay in flight (for the 2 s append timeout at least).
        var segment = await cluster.OpenSegmentAsync("node-lost");
        var trigger = Path.Combine(cluster.FaultDirectory, segment.MirrorA + ".hold-flush");
        var reached = Path.Combine(cluster.FaultDirectory, segment.MirrorA + ".held");
        await File.WriteAllTextAsync(trigger, "");
        Task<IoStatus>[] inflight;
        Stopwatch sinceKill;
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100));
            inflight = [.. Enumerable.Range(1, 4).Select(i => handle.WriteAsync(i * BlockPattern.BlockBytes, acknowledged))];
            await TestCluster.WaitUntilAsync(() => Task.FromResult(File.Exists(reached)), Patience, $"{segment.MirrorA} to block an fdatasync on the hold");
            Assert.All(inflight, t => Assert.False(t.IsCompleted, "a write completed while its mirror's commit was held"));

            cluster.Cluster.Local.Kill("compute-2");
            sinceKill = Stopwatch.StartNew();
            foreach (var write in inflight)
            {
                var failure = await Assert.ThrowsAsync<VolumeIoException>(() => write);
                Assert.Equal("NodeLost", failure.Error);
                Assert.Contains("compute-2", failure.Message, StringComparison.Ordinal);
            }
        }
        finally
        {
            File.Delete(trigger);
        }

        var failedAfter = sinceKill.Elapsed;
        output.WriteLine($"calls in flight failed {failedAfter.TotalMilliseconds:F0} ms after compute-2 was killed");
        // Their own timeout is 10 s from when they were sent; the node is declared dead within a second or so here.
        Assert.True(failedAfter < TimeSpan.FromSeconds(6), $"the calls failed {failedAfter.TotalSeconds:F1} s after the kill");
        Assert.True(handle.NodeLost);
        Assert.Equal("NodeLost", (await Assert.ThrowsAsync<VolumeIoException>(() => handle.ReadAsync(0, BlockPattern.BlockBytes))).Error);

        // The operator's path for a node known dead: force the volume over; a new handle there reads what was acknowledged.
        var moved = await cluster.Grains.GetGrain<IVolumeGrain>("node-lost").AttachAsync("compute-1", force: true);
        Assert.True(moved.Ok, moved.Message);
        await using (var successor = await VolumeHandle.OpenAsync(cluster.Grains, "node-lost", "compute-1"))
        {
            var read = await successor.ReadAsync(0, BlockPattern.BlockBytes);
            Assert.Equal(IoStatus.Ok, read.Status);
            Assert.Equal(acknowledged, read.Data);
        }

        await cluster.RestartAsync("compute-2");
    }
}
