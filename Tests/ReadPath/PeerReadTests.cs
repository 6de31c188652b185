using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
using static Converge.Tests.ReadPath.ReadPathSupport;

namespace Converge.Tests.ReadPath;

/// <summary>
/// Real silo processes (two compute, two storage). Which tier served a read is proven by the compute nodes' per-tier
/// counters, read over the cluster, never by timing.
/// </summary>
public sealed class PeerReadTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RepeatedReads_HitRam_AfterAMove_ThePreviousHolderServesItsBlocks_AndAColdNodeReadsStorage()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 2, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        await CreateAsync(cluster, "moving");
        await CreateAsync(cluster, "cold");

        // Local RAM: the write put every block into compute-1's cache.
        await using (var v = await VolumeHandle.OpenAsync(cluster, "moving", "compute-1"))
        {
            await WriteAsync(v, 0, 64, 1);
            var before = await StatsAsync(cluster, "compute-1");
            for (var i = 0; i < 3; i++)
            {
                await ReadExpectAsync(v, 0, 64, 1);
            }

            var after = await StatsAsync(cluster, "compute-1");
            Assert.Equal(before.RamHits + (3 * 64), after.RamHits);
            Assert.Equal(before.RamHitBytes + (3 * 64 * BlockBytes), after.RamHitBytes);
            Assert.Equal(before.StorageReads, after.StorageReads);
            Assert.True(after.RamLatency.Samples >= 3 * 64 && after.RamLatency.P99Us > 0, $"RAM latency recorded: {after.RamLatency}");
        }

        // Moved: compute-2's first reads of those blocks come from compute-1's cache, then from its own RAM.
        await using (var v = await VolumeHandle.OpenAsync(cluster, "moving", "compute-2"))
        {
            var before = await StatsAsync(cluster, "compute-2");
            var peerBefore = await StatsAsync(cluster, "compute-1");
            await ReadExpectAsync(v, 0, 64, 1);
            var after = await StatsAsync(cluster, "compute-2");
            Assert.Equal(before.PeerHits + 64, after.PeerHits);
            Assert.Equal(before.PeerHitBytes + (64 * BlockBytes), after.PeerHitBytes);
            Assert.Equal(0, after.StorageReads);
            Assert.Equal(before.PeerCalls + 1, after.PeerCalls);
            Assert.Equal(peerBefore.PeerServed + 64, (await StatsAsync(cluster, "compute-1")).PeerServed);

            await ReadExpectAsync(v, 0, 64, 1);
            var again = await StatsAsync(cluster, "compute-2");
            Assert.Equal(after.RamHits + 64, again.RamHits);
            Assert.Equal(after.PeerHits, again.PeerHits);
            Assert.Equal(0, again.StorageReads);
        }

        // Cold: compute-1 wrote "cold" but its cache was dropped; compute-2 never held it, so the blocks come from storage.
        await using (var v = await VolumeHandle.OpenAsync(cluster, "cold", "compute-1"))
        {
            await WriteAsync(v, 100, 16, 1);
        }

        await cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key("compute-1")).EvictVolumeAsync("cold");
        await using (var v = await VolumeHandle.OpenAsync(cluster, "cold", "compute-2"))
        {
            var before = await StatsAsync(cluster, "compute-2");
            await ReadExpectAsync(v, 100, 16, 1);
            var after = await StatsAsync(cluster, "compute-2");
            Assert.Equal(before.PeerHits, after.PeerHits);
            Assert.Equal(before.StorageReads + 16, after.StorageReads);
            Assert.Equal(before.Misses + 16, after.Misses);
        }
    }

    [Fact]
    public async Task StalePeerCopy_IsNeverUsed_ForBlocksWrittenSinceTheMove_WhileDirtyOrAfterDestage()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 2, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        await CreateAsync(cluster, "stale");
        await using (var v = await VolumeHandle.OpenAsync(cluster, "stale", "compute-1"))
        {
            await WriteAsync(v, 0, 32, 1);
            await WriteAsync(v, SecondRegionBlock, 8, 1);
        }

        var cache2 = cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key("compute-2"));
        await using var moved = await VolumeHandle.OpenAsync(cluster, "stale", "compute-2");

        // compute-1 still holds version 1 of blocks 0..7; compute-2 overwrites them and forgets its own copies.
        await WriteAsync(moved, 0, 8, 2);
        Assert.Equal(8, await cache2.EvictAsync("stale", 0, 8 * BlockBytes));
        var before = await StatsAsync(cluster, "compute-2");
        await ReadExpectAsync(moved, 0, 8, 2);
        await ReadExpectAsync(moved, 8, 24, 1);
        var dirtyRead = await StatsAsync(cluster, "compute-2");
        Assert.Equal(before.PeerHits, dirtyRead.PeerHits);
        Assert.Equal(before.PeerCalls, dirtyRead.PeerCalls);
        Assert.Equal(before.StorageReads + 32, dirtyRead.StorageReads);

        // Another region, never written by compute-2: the previous holder's copies are proven current and used.
        await ReadExpectAsync(moved, SecondRegionBlock, 8, 1);
        var otherRegion = await StatsAsync(cluster, "compute-2");
        Assert.Equal(dirtyRead.PeerHits + 8, otherRegion.PeerHits);

        // Once destaged and pruned, blocks 0..7 have no dirty entry (no LSN to check): still never the stale peer copy.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
        while (true)
        {
            await cache2.EvictAsync("stale", 0, 8 * BlockBytes);
            var round = await StatsAsync(cluster, "compute-2");
            await ReadExpectAsync(moved, 0, 8, 2);
            var done = await StatsAsync(cluster, "compute-2");
            Assert.Equal(round.PeerHits, done.PeerHits);
            Assert.Equal(round.PeerCalls, done.PeerCalls);
            if (done.LogReads == round.LogReads && done.ExtentReads == round.ExtentReads + 8)
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, "blocks 0..7 were still read from the log 45 s after the write: the controller never forgot them as destaged");
            await Task.Delay(250);
        }
    }

    /// <summary>
    /// NBD clients such as fio connect, disconnect and connect again; each last disconnect detaches, so the reconnect is
    /// a new attachment whose previous holder is the node itself. It keeps the peer and the regions written since the
    /// move, so the previous holder's copies stay usable where they are current and unused where they are not.
    /// </summary>
    [Fact]
    public async Task AReopenOnTheSameNode_KeepsThePreviousHoldersCache_ButNotForRegionsWrittenSinceTheMove()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 2, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        await CreateAsync(cluster, "reopen");
        await using (var v = await VolumeHandle.OpenAsync(cluster, "reopen", "compute-1"))
        {
            await WriteAsync(v, 0, 32, 1);
            await WriteAsync(v, SecondRegionBlock, 8, 1);
        }

        await using (var v = await OpenWhenFreeAsync(cluster, "reopen", "compute-2", TimeSpan.FromSeconds(30)))
        {
            await WriteAsync(v, 0, 8, 2);
        }

        await using (var v = await OpenWhenFreeAsync(cluster, "reopen", "compute-2", TimeSpan.FromSeconds(30)))
        {
            await cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key("compute-2")).EvictVolumeAsync("reopen");
            var before = await StatsAsync(cluster, "compute-2");
            await ReadExpectAsync(v, SecondRegionBlock, 8, 1);
            var untouched = await StatsAsync(cluster, "compute-2");
            Assert.Equal(before.PeerHits + 8, untouched.PeerHits);
            Assert.Equal(before.StorageReads, untouched.StorageReads);

            // Region 0 was written by compute-2 before the reopen: compute-1's copies there are never used.
            await ReadExpectAsync(v, 0, 8, 2);
            await ReadExpectAsync(v, 8, 24, 1);
            var written = await StatsAsync(cluster, "compute-2");
            Assert.Equal(untouched.PeerHits, written.PeerHits);
            Assert.Equal(untouched.StorageReads + 32, written.StorageReads);
        }
    }

    /// <summary>
    /// An attach without a controller (a forced move from the CLI, or the drill's) between another node's writes and
    /// this node's open makes this node its own "previous holder": its cache, written before the other node's
    /// overwrite, must still be dropped, or the destaged (clean) blocks would be served from the stale copy.
    /// </summary>
    [Fact]
    public async Task ForcedAttachBetweenHolders_DropsTheStaleCache_ButAPlainReopenKeepsIt()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 2, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        await CreateAsync(cluster, "forced");
        await using (var v = await VolumeHandle.OpenAsync(cluster, "forced", "compute-1"))
        {
            await WriteAsync(v, 0, 16, 1);
            await ReadExpectAsync(v, 0, 16, 1);
        }

        await using (var v = await VolumeHandle.OpenAsync(cluster, "forced", "compute-2"))
        {
            await WriteAsync(v, 0, 16, 2);
        }

        // Version 2 destaged on both mirrors, so the next attach rebuilds no dirty entry for these blocks.
        var volume = cluster.GetGrain<Converge.Volumes.IVolumeGrain>("forced");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var pending = 0;
            foreach (var segment in await volume.GetSegmentsAsync())
            {
                foreach (var node in new[] { segment.MirrorA, segment.MirrorB })
                {
                    var mirror = cluster.GetGrain<ILogSegmentGrain>(Converge.Cluster.NodeRoles.PinnedKey(node, segment.SegmentId.ToString("N")));
                    pending += await mirror.IsDestagedAsync() ? 0 : 1;
                }
            }

            if (pending == 0)
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, $"{pending} segment copies still not destaged 60 s after the writes");
            await Task.Delay(250);
        }

        var forced = await volume.AttachAsync("compute-1", force: true);
        Assert.True(forced.Ok, forced.Message);
        await using (var v = await VolumeHandle.OpenAsync(cluster, "forced", "compute-1"))
        {
            await ReadExpectAsync(v, 0, 16, 2);
            var copies = await cluster.GetGrain<IVolumeControllerGrain>(Converge.Cluster.NodeRoles.PinnedKey("compute-1", "forced")).DescribeBlockAsync(3);
            Assert.Contains(copies, x => x.Source == "dirty map" && x.Note.StartsWith("clean", StringComparison.Ordinal));
            var extents = copies.Where(x => x.Source.StartsWith("extent ", StringComparison.Ordinal)).ToArray();
            Assert.Equal(2, extents.Length);
            Assert.All(extents, x => Assert.Null(Converge.Tests.WritePath.BlockPattern.Check(x.Data ?? [], 7, 3, 2, 2)));
            var cached = Assert.Single(copies, x => x.Source == "cache");
            Assert.Equal(extents[0].Lsn, cached.Lsn);
        }

        // Nobody attached in between: the cache is kept and serves every block.
        await using (var v = await VolumeHandle.OpenAsync(cluster, "forced", "compute-1"))
        {
            var before = await StatsAsync(cluster, "compute-1");
            await ReadExpectAsync(v, 0, 16, 2);
            var after = await StatsAsync(cluster, "compute-1");
            Assert.Equal(before.RamHits + 16, after.RamHits);
            Assert.Equal(before.StorageReads, after.StorageReads);
        }
    }

    [Fact]
    public async Task KilledHolder_TakeoverReadsEveryAcknowledgedWrite_ThenHitsItsOwnRam()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 2, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        await CreateAsync(cluster, "killed");
        var v1 = await VolumeHandle.OpenAsync(cluster, "killed", "compute-1");
        for (var i = 0; i < 8; i++)
        {
            await WriteAsync(v1, i * 4, 4, 1);
        }

        await WriteAsync(v1, 0, 8, 2);
        await WriteAsync(v1, SecondRegionBlock, 16, 1);
        c.Local.Kill("compute-1");

        // The dead holder's lease must lapse before another node may attach. A volume grain that lived on the killed node
        // starts its lease clock again where it is reactivated, once membership has declared the node dead: on a loaded
        // machine that took over 30 s before the 10 s lease began.
        await using var v2 = await OpenWhenFreeAsync(cluster, "killed", "compute-2", TimeSpan.FromSeconds(90));
        var before = await StatsAsync(cluster, "compute-2");
        await ReadExpectAsync(v2, 0, 8, 2);
        await ReadExpectAsync(v2, 8, 24, 1);
        await ReadExpectAsync(v2, SecondRegionBlock, 16, 1);
        var first = await StatsAsync(cluster, "compute-2");
        Assert.Equal(before.PeerHits, first.PeerHits);
        Assert.Equal(before.StorageReads + 48, first.StorageReads);

        await ReadExpectAsync(v2, 0, 8, 2);
        await ReadExpectAsync(v2, 8, 24, 1);
        await ReadExpectAsync(v2, SecondRegionBlock, 16, 1);
        var second = await StatsAsync(cluster, "compute-2");
        Assert.Equal(first.RamHits + 48, second.RamHits);
        Assert.Equal(first.StorageReads, second.StorageReads);
    }
}
