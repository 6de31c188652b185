using System.Diagnostics;
using Converge.Client;
using Converge.DataPath;
using Converge.Storage;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.Destage;

/// <summary>
/// Real silo processes (1 compute, 2 storage, so both storage nodes hold every segment and every group replica):
/// writes go to the log, the controller seals idle or full segments, the storage nodes destage them to the extent
/// replicas and reclaim their log chunks, and reads come back from the extents.
/// </summary>
public sealed class DestageClusterTests(ITestOutputHelper output)
{
    private const int BlockSizeBytes = 4096;
    private const int MiB = 1024 * 1024;
    private static readonly TimeSpan DestageTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task WriteBurst_IsDestagedToBothReplicas_LogChunksAreReclaimed_AndOverwritesAndTrimsWin()
    {
        await using var cluster = await TestCluster.StartAsync(output, compute: 1, storage: 2);
        await using var client = await cluster.ConnectAsync();
        var volumeId = await CreateAsync(client, "burst", 1L << 30);
        var model = new byte[128 * MiB];
        new Random(20250101).NextBytes(model.AsSpan(0, 96 * MiB));

        await using (var volume = await VolumeHandle.OpenAsync(client.Cluster, "burst", "compute-1"))
        {
            // 96 MiB: three 32 MiB segments, more than one 64 MiB log chunk on each storage node.
            var written = Stopwatch.StartNew();
            await WriteAsync(volume, model, 0, 96 * MiB);
            output.WriteLine($"burst of 96 MiB acknowledged in {written.Elapsed.TotalSeconds:F1} s ({96 / written.Elapsed.TotalSeconds:F1} MB/s)");
            var peak = await StatusesAsync(client);
            output.WriteLine(string.Join("; ", peak.Select(s => $"{s.Node} after the burst: {s.ChunkCount} chunk(s), {s.DestagedSegments} segments already destaged")));

            var destaged = Stopwatch.StartNew();
            var done = await WaitDestagedAsync(client, "the 96 MiB burst");
            output.WriteLine($"destaged and reclaimed {destaged.Elapsed.TotalSeconds:F1} s after the burst");
            foreach (var s in done)
            {
                output.WriteLine($"{s.Node}: {s.DestagedSegments} segments, {s.DestagedPayloadBytes / MiB} MiB destaged in {s.DestageBusyMs:F0} ms busy " +
                    $"({s.DestagedPayloadBytes / 1e6 / Math.Max(s.DestageBusyMs / 1000, 1e-3):F1} MB/s to two replicas); {s.SegmentsReleasedByLeader} released after their leader destaged them; " +
                $"{s.ChunkCount} chunk(s), NVRAM {s.NvramUsedBytes} bytes");
                // 96 MiB passed through 64 MiB chunks: being down to one chunk means chunks were reclaimed.
                Assert.Equal(1, s.ChunkCount);
            }

            // One mirror of each segment applies it and the other releases its copy: the two nodes together applied the
            // burst about once, not twice (a follower that gave up on its leader would add a whole segment).
            var applied = done.Sum(s => s.DestagedPayloadBytes);
            Assert.True(applied >= 96L * MiB, $"the nodes applied only {applied} bytes of the 96 MiB burst");
            Assert.True(applied < 128L * MiB, $"the nodes applied {applied} bytes: both mirrors destaged the same segments");
            Assert.True(done.Sum(s => s.SegmentsReleasedByLeader) >= 2, "followers released segments their leader destaged");

            await AssertReplicasHoldAsync(client, volumeId, model, firstBlock: 0, blockCount: 96 * MiB / BlockSizeBytes, sampleEvery: 97);
            await AssertReadsBackAsync(volume, model, 0, 128 * MiB);

            // Overwrite and trim destaged data; both must win over the extents, before and after their own destage.
            new Random(7).NextBytes(model.AsSpan(10 * MiB, 3 * MiB));
            await WriteAsync(volume, model, 10 * MiB, 3 * MiB);
            Assert.Equal(IoStatus.Ok, await volume.ZeroAsync(40 * MiB + 8192, 5 * MiB));
            model.AsSpan(40 * MiB + 8192, 5 * MiB).Clear();
            await AssertReadsBackAsync(volume, model, 0, 64 * MiB);

            await WaitDestagedAsync(client, "the overwrite and the trim");
            await AssertReplicasHoldAsync(client, volumeId, model, firstBlock: 10 * MiB / BlockSizeBytes, blockCount: 3 * MiB / BlockSizeBytes, sampleEvery: 1);
            await AssertReplicasHoldAsync(client, volumeId, model, firstBlock: (40 * MiB + 8192) / BlockSizeBytes, blockCount: 5 * MiB / BlockSizeBytes, sampleEvery: 1);
            await AssertReadsBackAsync(volume, model, 0, 64 * MiB);
        }
    }

    [Fact]
    public async Task DestagedData_ReadsBackIdentical_AfterEveryStorageSiloRestarts()
    {
        await using var cluster = await TestCluster.StartAsync(output, compute: 1, storage: 2);
        var model = new byte[32 * MiB];
        new Random(99).NextBytes(model.AsSpan(0, 24 * MiB));
        Guid volumeId;
        await using (var client = await cluster.ConnectAsync())
        {
            volumeId = await CreateAsync(client, "restart", 256L * MiB);
            await using var volume = await VolumeHandle.OpenAsync(client.Cluster, "restart", "compute-1");
            await WriteAsync(volume, model, 0, 24 * MiB);
            Assert.Equal(IoStatus.Ok, await volume.ZeroAsync(4 * MiB, 2 * MiB));
            model.AsSpan(4 * MiB, 2 * MiB).Clear();
            await WaitDestagedAsync(client, "24 MiB and a trim");
            await AssertReadsBackAsync(volume, model, 0, 32 * MiB);
        }

        // Every silo stops and starts again: the compute node comes back with a cold cache, the storage nodes recover
        // their logs (destage is not logged, so recovered sealed segments are destaged again, changing nothing).
        await cluster.Local.DownAsync();
        await cluster.Local.UpAsync(new Converge.Client.Local.UpOptions(1, 2, false, cluster.Layout.PortOffset), CancellationToken.None);
        await using (var client = await cluster.ConnectAsync())
        {
            await using var volume = await VolumeHandle.OpenAsync(client.Cluster, "restart", "compute-1");
            await AssertReadsBackAsync(volume, model, 0, 32 * MiB);
            await WaitDestagedAsync(client, "recovered segments after the restart");
            await AssertReplicasHoldAsync(client, volumeId, model, firstBlock: 0, blockCount: 24 * MiB / BlockSizeBytes, sampleEvery: 13);
            await AssertReadsBackAsync(volume, model, 0, 32 * MiB);

            new Random(5).NextBytes(model.AsSpan(20 * MiB, MiB));
            await WriteAsync(volume, model, 20 * MiB, MiB);
            await AssertReadsBackAsync(volume, model, 16 * MiB, 8 * MiB);
        }
    }

    /// <summary>
    /// A writer killed before it sealed its segment leaves it unsealed on both mirrors; with nobody attaching the
    /// volume again, the storage nodes seal it themselves once it took no record for 30 s, and destage it.
    /// </summary>
    [Fact]
    public async Task OrphanedSegment_OfAKilledWriter_IsSealedAndDestagedByItsNodes()
    {
        await using var cluster = await TestCluster.StartAsync(output, compute: 1, storage: 2);
        await using var client = await cluster.ConnectAsync();
        await CreateAsync(client, "orphan", 64L * MiB);
        var model = new byte[MiB];
        new Random(3).NextBytes(model);
        var volume = await VolumeHandle.OpenAsync(client.Cluster, "orphan", "compute-1");
        await WriteAsync(volume, model, 0, MiB);
        var segment = Assert.Single(await client.Cluster.GetGrain<IVolumeGrain>("orphan").GetSegmentsAsync());
        Assert.False(segment.Sealed);
        cluster.Local.Kill("compute-1");

        var clock = Stopwatch.StartNew();
        while (true)
        {
            StorageNodeStatus[] statuses;
            try
            {
                statuses = await StatusesAsync(client);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException)
            {
                // The client's gateway may have been compute-1: it moves to another silo.
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90), $"no storage node status for 90 s: {e.Message}");
                await Task.Delay(500);
                continue;
            }

            if (statuses.All(s => s.OpenSegments == 0 && s.SealedUndestagedSegments == 0))
            {
                break;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(90),
                $"the killed writer's segment is still open or undestaged 90 s later: {string.Join("; ", statuses.Select(s => $"{s.Node}: open {s.OpenSegments}, undestaged {s.SealedUndestagedSegments}"))}");
            await Task.Delay(500);
        }

        output.WriteLine($"sealed and destaged by the storage nodes {clock.Elapsed.TotalSeconds:F1} s after the writer was killed");
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(20), "sealed long before the 30 s idle limit: something else sealed it");
    }

    private static async Task<Guid> CreateAsync(ConvergeClient client, string name, long sizeBytes)
    {
        var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(name, sizeBytes, BlockSizeBytes);
        Assert.True(created.Ok, created.Message);
        return created.Volume!.VolumeId;
    }

    private static async Task WriteAsync(VolumeHandle volume, byte[] model, int offsetBytes, int lengthBytes)
    {
        const int chunk = MiB;
        var inFlight = new List<Task<IoStatus>>();
        for (var at = offsetBytes; at < offsetBytes + lengthBytes; at += chunk)
        {
            inFlight.Add(volume.WriteAsync(at, model.AsMemory(at, Math.Min(chunk, offsetBytes + lengthBytes - at))));
            if (inFlight.Count == 4)
            {
                Assert.All(await Task.WhenAll(inFlight), s => Assert.Equal(IoStatus.Ok, s));
                inFlight.Clear();
            }
        }

        Assert.All(await Task.WhenAll(inFlight), s => Assert.Equal(IoStatus.Ok, s));
    }

    private static async Task AssertReadsBackAsync(VolumeHandle volume, byte[] model, int offsetBytes, int lengthBytes)
    {
        const int chunk = 4 * MiB;
        for (var at = offsetBytes; at < offsetBytes + lengthBytes; at += chunk)
        {
            var length = Math.Min(chunk, offsetBytes + lengthBytes - at);
            var reply = await volume.ReadAsync(at, length);
            Assert.Equal(IoStatus.Ok, reply.Status);
            if (!reply.Data.AsSpan().SequenceEqual(model.AsSpan(at, length)))
            {
                var first = reply.Data.AsSpan().CommonPrefixLength(model.AsSpan(at, length));
                Assert.Fail($"read at {at}+{length} differs from what was written, first at byte {at + first}");
            }
        }
    }

    /// <summary>Reads blocks straight from both replicas of their groups and compares with the model (zeros for trimmed blocks).</summary>
    private static async Task AssertReplicasHoldAsync(ConvergeClient client, Guid volumeId, byte[] model, int firstBlock, int blockCount, int sampleEvery)
    {
        var map = await client.Cluster.GetGrain<IVolumePlacementGrain>(volumeId).GetAsync();
        Assert.NotNull(map);
        for (var block = firstBlock; block < firstBlock + blockCount; block += sampleEvery)
        {
            var group = map.GroupOfBlock(block);
            foreach (var node in new[] { map.Groups[group].NodeA, map.Groups[group].NodeB })
            {
                var reply = await client.Cluster.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(node, volumeId, group)).ReadBlocksAsync(BlockSizeBytes, block, 1);
                Assert.Equal(ExtentStatus.Ok, reply.Status);
                var expected = model.AsSpan(block * BlockSizeBytes, BlockSizeBytes);
                Assert.True(reply.Data.AsSpan().SequenceEqual(expected), $"block {block} on {node} (group {group}) differs from what was written");
                Assert.True(reply.Blocks[0].State is ExtentBlock.Data or ExtentBlock.Zero, $"block {block} on {node} is in state {reply.Blocks[0].State}");
                Assert.True(reply.Blocks[0].Lsn.Sequence > 0, $"block {block} on {node} carries no LSN");
            }
        }
    }

    private static async Task<StorageNodeStatus[]> StatusesAsync(ConvergeClient client) =>
        await Task.WhenAll(new[] { "storage-1", "storage-2" }.Select(n => client.Cluster.GetGrain<IStorageNodeGrain>(IStorageNodeGrain.Key(n)).GetStatusAsync()));

    /// <summary>Waits until no storage node holds an open or sealed-undestaged segment and each is down to its current chunk.</summary>
    private async Task<StorageNodeStatus[]> WaitDestagedAsync(ConvergeClient client, string what)
    {
        var deadline = Stopwatch.StartNew();
        StorageNodeStatus[] statuses = [];
        while (deadline.Elapsed < DestageTimeout)
        {
            statuses = await StatusesAsync(client);
            if (statuses.All(s => s.OpenSegments == 0 && s.SealedUndestagedSegments == 0 && s.ChunkCount == 1))
            {
                return statuses;
            }

            await Task.Delay(200);
        }

        var detail = string.Join("; ", statuses.Select(s => $"{s.Node}: open {s.OpenSegments}, undestaged {s.SealedUndestagedSegments}, chunks {s.ChunkCount}, failures {s.DestageFailures}"));
        output.WriteLine(detail);
        Assert.Fail($"destage of {what} did not finish within {DestageTimeout.TotalSeconds:F0} s ({detail})");
        return statuses;
    }
}
