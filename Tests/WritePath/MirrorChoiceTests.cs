using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>Real silo processes (one compute, three storage): a new segment's mirrors are the least loaded storage nodes.</summary>
public sealed class MirrorChoiceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ASecondVolumesSegment_UsesTheStorageNodeWithNoOpenSegment()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 1, storage: 3);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        foreach (var name in new[] { "first", "second" })
        {
            var created = await cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(name, 64L << 20, 4096);
            Assert.True(created.Ok, created.Message);
        }

        await using var first = await VolumeHandle.OpenAsync(cluster, "first", "compute-1");
        Assert.Equal(IoStatus.Ok, await first.WriteAsync(0, new byte[4096]));
        var firstSegment = Assert.Single(await cluster.GetGrain<IVolumeGrain>("first").GetSegmentsAsync(), s => !s.Sealed);

        // Each open segment weighs 64 MiB of NVRAM in the choice; the node without one must be picked. The first volume
        // keeps writing so that its segment is not sealed for idleness (2 s) meanwhile.
        var idle = new[] { "storage-1", "storage-2", "storage-3" }.Single(n => n != firstSegment.MirrorA && n != firstSegment.MirrorB);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var keepBusy = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Assert.Equal(IoStatus.Ok, await first.WriteAsync(4096, new byte[4096]));
                await Task.Delay(200);
            }
        });
        await using var second = await VolumeHandle.OpenAsync(cluster, "second", "compute-1");
        Assert.Equal(IoStatus.Ok, await second.WriteAsync(0, new byte[4096]));
        await stop.CancelAsync();
        await keepBusy;
        Assert.Equal(firstSegment.SegmentId, Assert.Single(await cluster.GetGrain<IVolumeGrain>("first").GetSegmentsAsync(), s => !s.Sealed).SegmentId);
        var secondSegment = Assert.Single(await cluster.GetGrain<IVolumeGrain>("second").GetSegmentsAsync(), s => !s.Sealed);
        output.WriteLine($"first on {firstSegment.MirrorA}+{firstSegment.MirrorB}, second on {secondSegment.MirrorA}+{secondSegment.MirrorB}");
        Assert.NotEqual(secondSegment.MirrorA, secondSegment.MirrorB);
        Assert.Contains(idle, new[] { secondSegment.MirrorA, secondSegment.MirrorB });
    }
}
