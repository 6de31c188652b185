using System.Diagnostics;
using Converge.Client;
using Converge.Client.Local;
using Converge.DataPath;
using Converge.Grains.Placement;
using Converge.Storage;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>
/// A storage silo cut off the network for real: every silo runs in a network namespace of its own, joined by a bridge,
/// and the victim's bridge port goes down (its packets are dropped; its process runs on and is told nothing). The
/// writer must treat it as a lost mirror and go on with a live pair; after the partition heals the silo comes back
/// (restarted if it stopped itself on learning it was declared dead), catches up and takes segments again, and every
/// acknowledged write reads back.
/// </summary>
public sealed class PartitionTests(ITestOutputHelper output)
{
    private const string Volume = "partitioned";
    private const long Blocks = 1024;
    private static readonly TimeSpan Cut = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task AMirrorCutOffTheNetwork_IsHandledLikeALoss_AndCatchesUpAfterTheHeal()
    {
        await using var cluster = await TestCluster.StartAsync(output, compute: 1, storage: 4, namespaces: true);
        // Calls go only through nodes that are never cut off: a gateway on the victim would hold them until they time out.
        await using var client = await cluster.ConnectThroughAsync("storage-1", "compute-1");
        var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(Volume, Blocks * BlockPattern.BlockBytes, BlockPattern.BlockBytes);
        Assert.True(created.Ok, created.Message);
        var model = new BlockModel((uint)created.Volume!.VolumeId.GetHashCode(), Blocks);
        var buffer = new byte[BlockPattern.BlockBytes];
        await using var volume = new VolumeSession(client.Cluster, Volume, "compute-1");
        long next = 0;
        for (var n = 0; n < 200; n++)
        {
            await model.WriteAcknowledgedAsync(volume, next++ % Blocks, buffer);
        }

        var before = await OpenSegmentAsync(client.Cluster);
        // storage-1 holds the embedded membership table: cutting it off is an outage of the control plane, not this test.
        var victim = before.MirrorA == "storage-1" ? before.MirrorB : before.MirrorA;
        cluster.Local.Partition(victim);
        output.WriteLine($"cut {victim} (a mirror of segment {before.SegmentId}) off the network");
        var clock = Stopwatch.StartNew();
        var acknowledgedBefore = model.AcknowledgedWrites;
        try
        {
            // Writes go on while it is cut off: some may fail at the moment of the cut (no acknowledgement is no loss).
            var longest = TimeSpan.Zero;
            while (clock.Elapsed < Cut)
            {
                var started = clock.Elapsed;
                await model.WriteAsync(volume, next++ % Blocks, buffer);
                longest = clock.Elapsed - started > longest ? clock.Elapsed - started : longest;
            }

            var during = model.AcknowledgedWrites - acknowledgedBefore;
            var open = await OpenSegmentAsync(client.Cluster);
            output.WriteLine($"{during} writes acknowledged and {model.FailedWrites} not during the {Cut.TotalSeconds:0} s cut, the longest write {longest.TotalMilliseconds:0} ms; open segment {open.SegmentId} on {open.MirrorA}+{open.MirrorB}");
            Assert.True(during >= 100, $"only {during} writes acknowledged while {victim} was cut off");
            Assert.DoesNotContain(victim, new[] { open.MirrorA, open.MirrorB });
            Assert.NotEqual(before.SegmentId, open.SegmentId);
        }
        finally
        {
            cluster.Local.Heal(victim);
        }

        // Declared dead while cut off, the silo stops itself once it hears so; an operator's supervisor restarts it.
        var restarted = await WaitUntilServingAsync(cluster, client.Cluster, victim);
        output.WriteLine($"{victim} serves again {clock.Elapsed.TotalSeconds:0.0} s after the cut{(restarted ? ", restarted after it stopped itself" : ", without a restart")}");
        await model.VerifyAsync(volume, $"after {victim} came back");

        // It catches up and serves: keep writing, idle past the 2 s seal now and then, until a new segment uses it.
        var rejoin = Stopwatch.StartNew();
        while (true)
        {
            Assert.True(rejoin.Elapsed < Patience, $"no new segment used {victim} within {Patience.TotalSeconds:0} s of the heal");
            for (var n = 0; n < 20; n++)
            {
                await model.WriteAcknowledgedAsync(volume, next++ % Blocks, buffer);
            }

            var open = await OpenSegmentAsync(client.Cluster);
            if (open.MirrorA == victim || open.MirrorB == victim)
            {
                output.WriteLine($"segment {open.SegmentId} on {open.MirrorA}+{open.MirrorB} {rejoin.Elapsed.TotalSeconds:0.0} s after the heal");
                break;
            }

            await Task.Delay(TimeSpan.FromSeconds(2.5));
        }

        await model.VerifyAsync(volume, $"after {victim} took segments again");
        output.WriteLine($"{model.AcknowledgedWrites} writes acknowledged, {model.FailedWrites} not; every acknowledged block read back");
    }

    /// <summary>Waits until <paramref name="node"/> serves an unpoisoned log, restarting it if it stopped itself; true if it was restarted.</summary>
    private static async Task<bool> WaitUntilServingAsync(TestCluster cluster, IClusterClient grains, string node)
    {
        var restarted = false;
        await TestCluster.WaitUntilAsync(
            async () =>
            {
                var record = cluster.Layout.Find(node)!;
                if (!SiloProcess.IsRunning(record.Pid, record.Name))
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
                    await cluster.Local.StartNodeAsync(node, timeout.Token);
                    restarted = true;
                }

                try
                {
                    var stats = await grains.GetGrain<IStorageNodeGrain>(Converge.Cluster.NodeRoles.PinnedKey(node, IStorageNodeGrain.KeySuffix)).GetLogStatsAsync();
                    return !stats.Poisoned;
                }
                catch (Exception e) when (e is Orleans.Runtime.OrleansException or TimeoutException or NodeUnavailableException)
                {
                    return false;
                }
            },
            Patience,
            $"{node} to serve again after the heal");
        return restarted;
    }

    private static Task<SegmentRecord> OpenSegmentAsync(IClusterClient grains) => WritePathCluster.OpenSegmentAsync(grains, Volume);
}
