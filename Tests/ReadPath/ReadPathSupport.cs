using Converge.Client;
using Converge.DataPath;
using Converge.Tests.WritePath;
using Converge.Volumes;
using Orleans;
using Xunit;

namespace Converge.Tests.ReadPath;

/// <summary>Patterned block I/O and per-tier counters of compute nodes, read over the cluster through <see cref="ICacheNodeGrain"/>.</summary>
internal static class ReadPathSupport
{
    public const int BlockBytes = BlockPattern.BlockBytes;

    /// <summary>The first block of the second 4 MiB region: peer eligibility is tracked per region.</summary>
    public const long SecondRegionBlock = 4L * 1024 * 1024 / BlockBytes;

    public static Task<CacheNodeStats> StatsAsync(IClusterClient cluster, string node) =>
        cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(node)).GetStatsAsync();

    /// <summary>Creates a 64 MiB volume and returns its id.</summary>
    public static async Task<Guid> CreateAsync(IClusterClient cluster, string name)
    {
        var created = await cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(name, 64L * 1024 * 1024, BlockBytes);
        Assert.True(created.Ok, created.Message);
        return created.Volume!.VolumeId;
    }

    public static byte[] Blocks(long firstBlock, int count, long version)
    {
        var data = new byte[count * BlockBytes];
        for (var i = 0; i < count; i++)
        {
            BlockPattern.Fill(data.AsSpan(i * BlockBytes, BlockBytes), 7, firstBlock + i, version);
        }

        return data;
    }

    public static async Task WriteAsync(VolumeHandle v, long firstBlock, int count, long version) =>
        Assert.Equal(IoStatus.Ok, await v.WriteAsync(firstBlock * BlockBytes, Blocks(firstBlock, count, version)));

    /// <summary>Reads the blocks and asserts each is exactly the pattern of <paramref name="version"/>.</summary>
    public static async Task ReadExpectAsync(VolumeHandle v, long firstBlock, int count, long version)
    {
        var reply = await v.ReadAsync(firstBlock * BlockBytes, count * BlockBytes);
        Assert.Equal(IoStatus.Ok, reply.Status);
        for (var i = 0; i < count; i++)
        {
            var problem = BlockPattern.Check(reply.Data.AsSpan(i * BlockBytes, BlockBytes), 7, firstBlock + i, version, version);
            Assert.True(problem is null, $"block {firstBlock + i}: {problem}");
        }
    }

    /// <summary>Opens the volume on a node, retrying (bounded) while the previous holder's lease runs or a dead silo is still routed to.</summary>
    public static async Task<VolumeHandle> OpenWhenFreeAsync(IClusterClient cluster, string name, string node, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                return await VolumeHandle.OpenAsync(cluster, name, node);
            }
            catch (Exception e) when ((e is VolumeIoException or OrleansException or TimeoutException) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }
        }
    }
}
