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
/// Real silo processes (1 compute, 4 storage): a storage node killed and removed for good. Every placement group gets
/// two replicas on live nodes again, each new replica holds the data block for block, the log segments it mirrored
/// are destaged from their other mirror and pruned, the data survives losing a second original replica node, and the
/// removed node, started again, serves none of its stale copies.
/// </summary>
public sealed class RereplicationTests(ITestOutputHelper output)
{
    private const int BlockSizeBytes = 4096;
    private const int MiB = 1024 * 1024;
    private static readonly TimeSpan BaseTimeout = TimeSpan.FromSeconds(90);
    private TimeSpan _timeout = BaseTimeout;

    [Fact]
    public async Task RemovedNode_GroupsRegainTwoReplicas_SegmentsArePruned_DataSurvivesASecondLoss_AndTheNodeStaysFenced()
    {
        // CONVERGE_REREP_MIB sizes the volume's written data (BENCHMARKS.md uses 256 for the throughput figure).
        var writtenMiB = int.TryParse(Environment.GetEnvironmentVariable("CONVERGE_REREP_MIB"), out var m) && m >= 8 ? m : 48;
        _timeout = BaseTimeout + TimeSpan.FromSeconds(writtenMiB);
        await using var cluster = await TestCluster.StartAsync(output, compute: 1, storage: 4);
        // storage-1 (the control plane) and compute-1 are never killed here.
        await using var client = await cluster.ConnectThroughAsync("storage-1", "compute-1");
        var grains = client.Cluster;
        var created = await grains.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("rerep", (writtenMiB + 16L) * MiB, BlockSizeBytes);
        Assert.True(created.Ok, created.Message);
        var volumeId = created.Volume!.VolumeId;
        var model = new byte[writtenMiB * MiB];
        new Random(4242).NextBytes(model);

        await using var volume = await VolumeHandle.OpenAsync(grains, "rerep", "compute-1");
        await WriteAsync(volume, model, 0, model.Length);
        await WaitSealedPrunedAsync(grains, "rerep", $"the first {writtenMiB} MiB to be destaged and pruned");

        // Overwrite part of it into the open segment, and lose one of that segment's mirrors (not the primary) at once:
        // the sealed-later segment then has a mirror on the removed node and must still be destaged and pruned.
        var open = (await grains.GetGrain<IVolumeGrain>("rerep").GetSegmentsAsync()).Single(s => !s.Sealed);
        var victim = open.MirrorA != "storage-1" ? open.MirrorA : open.MirrorB;
        // The map is read before the kill: a call sent through the killed node's gateway would wait out its timeout.
        var before = await grains.GetGrain<IVolumePlacementGrain>(volumeId).GetAsync();
        Assert.NotNull(before);
        new Random(7).NextBytes(model.AsSpan(2 * MiB, 6 * MiB));
        await WriteAsync(volume, model, 2 * MiB, 6 * MiB);
        cluster.Local.Kill(victim);
        output.WriteLine($"killed {victim}, a mirror of open segment {open.SegmentId}");
        var moved = Enumerable.Range(0, before.GroupCount).Where(g => before.Groups[g].Holds(victim)).ToArray();
        Assert.NotEmpty(moved);

        var roster = grains.GetGrain<IStorageRosterGrain>(0);
        // Right after the kill, the roster's directory entry may still be on the killed node: ride that out, as any client must.
        Assert.False((await TestCluster.PastALostSiloAsync(() => roster.RemoveNodeAsync("compute-1"), _timeout)).Ok);
        Assert.False((await roster.RemoveNodeAsync("storage-1")).Ok);
        var removal = await roster.RemoveNodeAsync(victim);
        Assert.True(removal.Ok, removal.Message);
        var clock = Stopwatch.StartNew();
        RereplicationStatus status = null!;
        await TestCluster.WaitUntilAsync(async () => !(status = await TestCluster.PastALostSiloAsync(roster.GetStatusAsync, _timeout)).Running, _timeout, "re-replication to finish");
        output.WriteLine($"re-replication: {status.GroupsCopied}/{status.GroupsToCopy} groups, {status.BytesCopied / 1e6:F1} MB in {status.ElapsedMs:F0} ms " +
            $"= {status.MegabytesPerSecond:F1} MB/s (waited {clock.Elapsed.TotalSeconds:F1} s), {status.GroupsFailed} failed: {status.LastError}");
        Assert.Equal(0, status.GroupsFailed);
        Assert.Equal(0, status.LostGroups);
        // The counts are the roster activation's own: when the removed node held the roster's directory entry, the roster
        // is activated afresh mid-way and resumes the groups still filling, so it may report fewer than were moved. That
        // every moved group went through exactly one move is checked on the map below (its epoch rose by two).
        Assert.InRange(status.GroupsCopied, 1, moved.Length);
        Assert.Equal(0, status.DegradedGroups);

        var after = await grains.GetGrain<IVolumePlacementGrain>(volumeId).GetAsync();
        Assert.NotNull(after);
        var live = new[] { "storage-1", "storage-2", "storage-3", "storage-4" }.Where(n => n != victim).ToHashSet();
        for (var g = 0; g < after.GroupCount; g++)
        {
            var r = after.Groups[g];
            Assert.True(live.Contains(r.NodeA) && live.Contains(r.NodeB) && r.NodeA != r.NodeB && !r.Filling, $"group {g}: {r}");
            Assert.Equal(moved.Contains(g) ? before.Groups[g].Epoch + 2 : before.Groups[g].Epoch, r.Epoch);
        }

        // The segment mirrored on the removed node is destaged from its survivor and leaves the catalogue.
        await TestCluster.WaitUntilAsync(async () => (await grains.GetGrain<IVolumeGrain>("rerep").GetSegmentsAsync()).All(s => !s.Sealed && s.SegmentId != open.SegmentId),
            _timeout, $"segment {open.SegmentId}, mirrored on the removed node, to be sealed, destaged from its survivor and pruned");

        // Both replicas of every group hold the model, read directly from the replica grains.
        await AssertReplicasHoldAsync(grains, after, model);

        // Lose the survivor of the most moved groups: those groups now have only their new copy.
        var second = moved.Select(g => before.Groups[g].NodeA == victim ? before.Groups[g].NodeB : before.Groups[g].NodeA)
            .Where(n => n != "storage-1").GroupBy(n => n).OrderByDescending(x => x.Count()).First().Key;
        cluster.Local.Kill(second);
        output.WriteLine($"killed {second}: {moved.Count(g => before.Groups[g].Holds(second))} moved groups now rely on their new replica alone");
        await AssertReadsBackAsync(volume, model);

        // Block status with one replica of many groups gone. Everything written is data in every answer. The
        // never-written tail is proven a hole by the survivors; the controller's map predates the re-replication, so a
        // group whose old replicas are both gone is asked again under a fresh map. Right after the kill the fresh map
        // may not be reachable yet (the placement grain may have lived on the killed node), and then the answer is
        // data, which is allowed: only a hole over data would be wrong.
        List<AllocationSpan> allocation = [];
        AllocationSpan[] expectedAllocation = [new((long)writtenMiB * MiB, Zero: false), new(16L * MiB, Zero: true)];
        var answers = 0;
        await TestCluster.WaitUntilAsync(async () =>
        {
            allocation = await AllocationAsync(grains, "compute-1/rerep", (writtenMiB + 16L) * MiB);
            output.WriteLine($"block status answer {++answers}: {string.Join(", ", allocation)}");
            Assert.False(allocation[0].Zero, $"written data reported as a hole: {string.Join(", ", allocation)}");
            Assert.True(allocation[0].LengthBytes >= (long)writtenMiB * MiB, $"written data reported as a hole: {string.Join(", ", allocation)}");
            return allocation.SequenceEqual(expectedAllocation);
        }, _timeout, "block status to prove the never-written tail a hole");

        // The removed node comes back: fenced, named by no map, its replicas and segments refuse to serve.
        await cluster.Local.StartNodeAsync(victim, CancellationToken.None);
        await TestCluster.WaitUntilAsync(async () =>
        {
            try
            {
                var stale = grains.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(victim, volumeId, moved[0]));
                return (await stale.ReadBlocksAsync(BlockSizeBytes, moved[0] * 1024L, 1)).Status == ExtentStatus.Faulted;
            }
            catch (Exception e) when (e is Orleans.Runtime.OrleansException or TimeoutException or Converge.Grains.Placement.NodeUnavailableException)
            {
                // This client's membership view has not seen the node rejoin yet.
                return false;
            }
        }, _timeout, $"{victim}'s stale replica of group {moved[0]} to refuse reads after its restart");
        Assert.True(await grains.GetGrain<ILogSegmentGrain>(victim + "/" + open.SegmentId.ToString("N")).IsDestagedAsync());
        var reread = await grains.GetGrain<IVolumePlacementGrain>(volumeId).GetAsync();
        Assert.DoesNotContain(reread!.Groups, r => r.Holds(victim));
        await cluster.Local.StartNodeAsync(second, CancellationToken.None);

        // New writes never land on the removed node, and everything still reads back.
        new Random(11).NextBytes(model.AsSpan(0, MiB));
        await WriteAsync(volume, model, 0, MiB);
        Assert.DoesNotContain(await grains.GetGrain<IVolumeGrain>("rerep").GetSegmentsAsync(), s => s.MirrorA == victim || s.MirrorB == victim);
        await AssertReadsBackAsync(volume, model);
    }

    /// <summary>
    /// A client whose request went through the gateway of a silo just killed gets no answer (a timeout) until it has
    /// moved to another gateway, as any client would: a bounded number of retries, the last failure thrown.
    /// </summary>
    private static async Task<VolumeReadReply> ReadRidingOutAKilledGatewayAsync(VolumeHandle volume, int offset)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await volume.ReadAsync(offset, MiB);
            }
            catch (Exception e) when (e is Orleans.Runtime.OrleansException or TimeoutException && attempt < 4)
            {
                // Retried on another gateway.
            }
        }
    }

    private static async Task WriteAsync(VolumeHandle volume, byte[] model, int offset, int length)
    {
        for (var o = offset; o < offset + length; o += MiB)
        {
            var status = await volume.WriteAsync(o, model.AsMemory(o, Math.Min(MiB, offset + length - o)));
            Assert.Equal(IoStatus.Ok, status);
        }
    }

    private Task WaitSealedPrunedAsync(IClusterClient grains, string name, string what) =>
        TestCluster.WaitUntilAsync(async () => (await grains.GetGrain<IVolumeGrain>(name).GetSegmentsAsync()).All(s => !s.Sealed), _timeout, what);

    private async Task AssertReplicasHoldAsync(IClusterClient grains, PlacementMap map, byte[] model)
    {
        var blocksPerExtent = map.BlocksPerExtent;
        var extents = model.Length / (blocksPerExtent * BlockSizeBytes);
        var compared = 0L;
        for (var extent = 0; extent < extents; extent++)
        {
            var group = extent % map.GroupCount;
            foreach (var node in new[] { map.Groups[group].NodeA, map.Groups[group].NodeB })
            {
                var reply = await grains.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, map.VolumeId, group))
                    .ReadBlocksAsync(BlockSizeBytes, (long)extent * blocksPerExtent, blocksPerExtent);
                Assert.True(reply.Status == ExtentStatus.Ok, $"{node} group {group} extent {extent}: {reply.Status} {reply.Message}");
                for (var b = 0; b < blocksPerExtent; b++)
                {
                    var offset = ((long)extent * blocksPerExtent + b) * BlockSizeBytes;
                    Assert.True(reply.Blocks[b].State == ExtentBlock.Data, $"{node} group {group} block {offset / BlockSizeBytes}: state {reply.Blocks[b].State}");
                    if (!reply.Data.AsSpan(b * BlockSizeBytes, BlockSizeBytes).SequenceEqual(model.AsSpan((int)offset, BlockSizeBytes)))
                    {
                        Assert.Fail($"{node} group {group} block {offset / BlockSizeBytes} differs from what was written");
                    }

                    compared++;
                }
            }
        }

        output.WriteLine($"compared {compared} blocks on both replicas of {extents} extents");
    }

    /// <summary>The allocation of a whole volume from its controller, adjacent runs of the same kind joined.</summary>
    private async Task<List<AllocationSpan>> AllocationAsync(IClusterClient grains, string controllerKey, long sizeBytes)
    {
        var controller = grains.GetGrain<IVolumeControllerGrain>(controllerKey);
        var runs = new List<AllocationSpan>();
        for (var offset = 0L; offset < sizeBytes;)
        {
            var reply = await TestCluster.PastALostSiloAsync(() => controller.GetAllocationAsync(offset, sizeBytes - offset), _timeout);
            Assert.Equal(IoStatus.Ok, reply.Status);
            Assert.NotEmpty(reply.Runs!);
            foreach (var run in reply.Runs!)
            {
                if (runs.Count > 0 && runs[^1].Zero == run.Zero)
                {
                    runs[^1] = runs[^1] with { LengthBytes = runs[^1].LengthBytes + run.LengthBytes };
                }
                else
                {
                    runs.Add(run);
                }

                offset += run.LengthBytes;
            }
        }

        return runs;
    }

    private static async Task AssertReadsBackAsync(VolumeHandle volume, byte[] model)
    {
        for (var o = 0; o < model.Length; o += MiB)
        {
            var reply = await ReadRidingOutAKilledGatewayAsync(volume, o);
            Assert.True(reply.Status == IoStatus.Ok, $"read at {o}: {reply.Status}");
            if (!reply.Data.AsSpan(0, MiB).SequenceEqual(model.AsSpan(o, MiB)))
            {
                Assert.Fail($"the volume's MiB at {o / MiB} differs from what was written");
            }
        }
    }
}
