using System.Diagnostics;
using Converge.Cluster;
using Converge.Grains.Placement;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.Cluster;

/// <summary>
/// Real silo processes (1 compute, 2 storage) started like <c>./converge up</c>, talking over TCP on loopback.
/// The metadata mode is a parameter so the same behaviours are proved on SQLite and on PostgreSQL.
/// </summary>
public abstract class ClusterLifecycleTests(ITestOutputHelper output, bool postgres)
{
    protected ITestOutputHelper Output { get; } = output;

    [Fact]
    public async Task Volumes_SurviveAFullClusterRestart_AndRefusalsChangeNothing()
    {
        await using var cluster = await TestCluster.StartAsync(Output, compute: 1, storage: 2, postgres: postgres);
        Guid id;
        await using (var client = await cluster.ConnectAsync())
        {
            var catalog = client.Cluster.GetGrain<IVolumeCatalogGrain>(0);
            var created = await catalog.CreateAsync("vm1", 1L << 30, 4096);
            Assert.True(created.Ok, created.Message);
            id = created.Volume!.VolumeId;

            var duplicate = await catalog.CreateAsync("vm1", 2L << 30, 4096);
            Assert.Equal(VolumeError.AlreadyExists, duplicate.Error);
            Assert.Equal(VolumeError.InvalidName, (await catalog.CreateAsync("Bad Name!", 1L << 30, 4096)).Error);
            Assert.Equal(VolumeError.InvalidSize, (await catalog.CreateAsync("v2", 1000, 4096)).Error);
            Assert.Equal(VolumeError.NotFound, (await catalog.RemoveAsync("nosuch", force: false)).Error);

            var grown = await client.Cluster.GetGrain<IVolumeGrain>("vm1").ResizeAsync(2L << 30);
            Assert.True(grown.Ok, grown.Message);
            Assert.Equal(VolumeError.ShrinkRefused, (await client.Cluster.GetGrain<IVolumeGrain>("vm1").ResizeAsync(1L << 30)).Error);

            var attached = await client.Cluster.GetGrain<IVolumeGrain>("vm1").AttachAsync("compute-1", force: false);
            Assert.True(attached.Ok, attached.Message);
            Assert.Equal(1UL, attached.Attachment!.Epoch);
            Assert.Equal(VolumeError.Attached, (await catalog.RemoveAsync("vm1", force: false)).Error);
            var refused = await client.Cluster.GetGrain<IVolumeGrain>("vm1").AttachAsync("compute-9", force: false);
            Assert.Equal(VolumeError.AttachedElsewhere, refused.Error);
            Assert.Contains("compute-1", refused.Message, StringComparison.Ordinal);
            Assert.True((await client.Cluster.GetGrain<IVolumeGrain>("vm1").DetachAsync("compute-1", 1)).Ok);

            var listed = Assert.Single(await catalog.ListAsync());
            Assert.Equal(("vm1", 2L << 30, 1UL), (listed.Name, listed.SizeBytes, listed.Epoch));
        }

        await cluster.Local.DownAsync();
        Assert.All(cluster.Layout.Nodes, n => Assert.Equal(0, n.Pid));
        await cluster.Local.UpAsync(new Client.Local.UpOptions(1, 2, postgres, cluster.Layout.PortOffset), CancellationToken.None);

        await using (var client = await cluster.ConnectAsync())
        {
            var volume = Assert.Single(await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).ListAsync());
            Assert.Equal(("vm1", id, 2L << 30, 1UL, (string?)null), (volume.Name, volume.VolumeId, volume.SizeBytes, volume.Epoch, volume.AttachedNode));

            var removed = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).RemoveAsync("vm1", force: false);
            Assert.True(removed.Ok, removed.Message);
            var recreated = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("vm1", 1L << 30, 4096);
            Assert.NotEqual(id, recreated.Volume!.VolumeId);
        }
    }

    [Fact]
    public async Task Placement_FollowsRolesAndPins_AndAPinnedGrainOfADeadNodeFailsFast()
    {
        await using var cluster = await TestCluster.StartAsync(Output, compute: 1, storage: 2, postgres: postgres);
        await using var client = await cluster.ConnectAsync();

        for (var i = 0; i < 8; i++)
        {
            Assert.Equal("compute-1", await client.Cluster.GetGrain<IComputeProbeGrain>($"c{i}").WhereAsync());
            Assert.StartsWith("storage-", await client.Cluster.GetGrain<IStorageProbeGrain>($"s{i}").WhereAsync(), StringComparison.Ordinal);
            Assert.Equal("storage-2", await client.Cluster.GetGrain<INodeProbeGrain>(NodeRoles.PinnedKey("storage-2", $"p{i}")).WhereAsync());
            Assert.Equal("compute-1", await client.Cluster.GetGrain<INodeProbeGrain>(NodeRoles.PinnedKey("compute-1", $"p{i}")).WhereAsync());
        }

        var unknown = await Assert.ThrowsAsync<NodeUnavailableException>(
            () => client.Cluster.GetGrain<INodeProbeGrain>(NodeRoles.PinnedKey("storage-9", "x")).WhereAsync());
        Assert.Contains("storage-9", unknown.Message, StringComparison.Ordinal);

        cluster.Local.Kill("storage-2");
        // Until membership declares storage-2 dead a call may still be routed to it and fail or time out on the
        // connection; after that, placement must refuse with an error naming the node, never activate elsewhere.
        var clock = Stopwatch.StartNew();
        Exception? last = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                await client.Cluster.GetGrain<INodeProbeGrain>(NodeRoles.PinnedKey("storage-2", $"after-{clock.ElapsedMilliseconds}"))
                    .WhereAsync().WaitAsync(TimeSpan.FromSeconds(3));
                Assert.Fail("a grain pinned to a killed node was activated");
            }
            catch (NodeUnavailableException e)
            {
                last = e;
                break;
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                last = e;
                await Task.Delay(200);
            }
        }

        var refusal = Assert.IsType<NodeUnavailableException>(last);
        Assert.Contains("storage-2", refusal.Message, StringComparison.Ordinal);
        Output.WriteLine($"pinned activation refused {clock.ElapsedMilliseconds} ms after SIGKILL");

        // A survivor's log says when its membership view declared the node dead (read after a stall, it dates it).
        var log = Path.Combine(cluster.Directory, "logs", "compute-1.log");
        string? declared = null;
        for (var waited = Stopwatch.StartNew(); declared is null && waited.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(200))
        {
            declared = File.ReadLines(log).FirstOrDefault(l => l.Contains("Membership v", StringComparison.Ordinal)
                && l.Contains(": storage-2 (", StringComparison.Ordinal) && l.EndsWith(" is Dead", StringComparison.Ordinal));
        }

        Assert.True(declared is not null, $"{log} does not say when storage-2 was declared dead");
        Output.WriteLine(declared);
    }
}

public sealed class SqliteClusterLifecycleTests(ITestOutputHelper output) : ClusterLifecycleTests(output, postgres: false)
{
    /// <summary>
    /// A file watcher in a silo (the host's default configuration reload watched the working directory recursively,
    /// data directory included) is woken by every log and extent write: it cost about 15% of the CPU under writes.
    /// </summary>
    [Fact]
    public async Task SiloProcesses_WatchNoFiles()
    {
        await using var cluster = await TestCluster.StartAsync(Output, compute: 1, storage: 2);
        foreach (var node in cluster.Layout.Nodes)
        {
            Assert.Equal((node.Name, 0), (node.Name, InotifyWatches(node.Pid)));
        }
    }

    /// <summary>Watches held through every inotify descriptor of the process (one <c>inotify wd:</c> line each in fdinfo).</summary>
    private static int InotifyWatches(int pid)
    {
        var watches = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            if (new FileInfo(fd).LinkTarget == "anon_inode:inotify")
            {
                watches += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
            }
        }

        return watches;
    }
}

public sealed class PostgresClusterLifecycleTests(ITestOutputHelper output) : ClusterLifecycleTests(output, postgres: true);
