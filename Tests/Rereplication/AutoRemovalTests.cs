using System.Diagnostics;
using Converge.Client;
using Converge.DataPath;
using Converge.Storage;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.Rereplication;

/// <summary>
/// Real silo processes (1 compute, 4 storage) with <c>--auto-remove-after 10</c>: a storage node killed and left down
/// is removed without an operator once it has been down that long, every placement group it held gets two replicas on
/// live nodes again, and every byte reads back.
/// </summary>
public sealed class AutoRemovalTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;
    private const int WrittenMiB = 16;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task AStorageNodeLeftDown_IsRemovedAutomatically_AndItsGroupsRegainTwoReplicas()
    {
        await using var cluster = await TestCluster.StartAsync(output, compute: 1, storage: 4, siloArguments: ["--auto-remove-after", "10"]);
        await using var client = await cluster.ConnectThroughAsync("storage-1", "compute-1");
        var grains = client.Cluster;
        var created = await grains.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("auto", (WrittenMiB + 8L) * MiB, 4096);
        Assert.True(created.Ok, created.Message);
        var model = new byte[WrittenMiB * MiB];
        new Random(99).NextBytes(model);
        await using var volume = await VolumeHandle.OpenAsync(grains, "auto", "compute-1");
        for (var o = 0; o < model.Length; o += MiB)
        {
            Assert.Equal(IoStatus.Ok, await volume.WriteAsync(o, model.AsMemory(o, MiB)));
        }

        await TestCluster.WaitUntilAsync(async () => (await grains.GetGrain<IVolumeGrain>("auto").GetSegmentsAsync()).All(s => !s.Sealed),
            Patience, "the written data to be destaged and pruned");
        var before = await grains.GetGrain<IVolumePlacementGrain>(created.Volume!.VolumeId).GetAsync();
        Assert.NotNull(before);
        // The control plane's node (storage-1) is never removed; take the other node holding the most groups.
        var victim = new[] { "storage-2", "storage-3", "storage-4" }.OrderByDescending(n => before.Groups.Count(g => g.Holds(n))).First();
        Assert.Contains(before.Groups, g => g.Holds(victim));

        var roster = grains.GetGrain<IStorageRosterGrain>(0);
        cluster.Local.Kill(victim);
        var clock = Stopwatch.StartNew();
        output.WriteLine($"killed {victim}, holding {before.Groups.Count(g => g.Holds(victim))} of {before.GroupCount} groups; not restarting it");
        try
        {
            await TestCluster.WaitUntilAsync(
                async () => (await TestCluster.PastALostSiloAsync(roster.GetRemovedNodesAsync, Patience)).Contains(victim), Patience, $"{victim} to be removed automatically");
        }
        catch (TimeoutException)
        {
            // Say what the silos said about it: the roster's refusals, the watch's failures.
            foreach (var node in cluster.Layout.Nodes.Where(n => n.Name != victim))
            {
                var path = cluster.Local.LogPath(node.Name);
                var lines = File.Exists(path) ? File.ReadLines(path).Where(l => l.Contains("remov", StringComparison.OrdinalIgnoreCase) || l.Contains("roster", StringComparison.OrdinalIgnoreCase)).TakeLast(10) : [];
                output.WriteLine($"{node.Name}: {string.Join(" | ", lines)}");
            }

            throw;
        }

        var removedAfter = clock.Elapsed;
        Assert.True(removedAfter >= TimeSpan.FromSeconds(10), $"{victim} was removed {removedAfter.TotalSeconds:F1} s after it was killed, before its 10 s were up");
        RereplicationStatus status = null!;
        await TestCluster.WaitUntilAsync(
            async () => (status = await TestCluster.PastALostSiloAsync(roster.GetStatusAsync, Patience)) is { Running: false, DegradedGroups: 0 }, Patience, "two replicas of every group again");
        output.WriteLine($"removed {removedAfter.TotalSeconds:F1} s after the kill; two replicas of every group {clock.Elapsed.TotalSeconds:F1} s after it " +
            $"({status.GroupsCopied} groups, {status.BytesCopied / 1e6:F1} MB at {status.MegabytesPerSecond:F1} MB/s)");
        Assert.Equal(0, status.LostGroups);
        Assert.Equal(0, status.GroupsFailed);

        var after = await grains.GetGrain<IVolumePlacementGrain>(created.Volume.VolumeId).GetAsync();
        Assert.DoesNotContain(after!.Groups, g => g.Holds(victim));
        for (var o = 0; o < model.Length; o += MiB)
        {
            var reply = await volume.ReadAsync(o, MiB);
            Assert.True(reply.Status == IoStatus.Ok, $"read at {o}: {reply.Status}");
            Assert.True(reply.Data.AsSpan(0, MiB).SequenceEqual(model.AsSpan(o, MiB)), $"the MiB at {o / MiB} differs from what was written");
        }
    }
}
