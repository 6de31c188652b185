using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.Cache;

/// <summary>Real silo processes: the compute node's cache is wired into the controller's read and write paths.</summary>
public sealed class CacheClusterTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ComputeSilo_ReadsBackWhatWasWritten_ThroughItsCache_WithAFlashFileInItsDataDirectory()
    {
        await using var c = await TestCluster.StartAsync(output, compute: 1, storage: 3);
        await using var client = await c.ConnectAsync();
        await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("cached", 64L * 1024 * 1024, 4096);
        await using var v = await VolumeHandle.OpenAsync(client.Cluster, "cached", "compute-1");

        var data = new byte[64 * 1024];
        new Random(7).NextBytes(data);
        Assert.Equal(IoStatus.Ok, await v.WriteAsync(8192, data));
        for (var i = 0; i < 3; i++)
        {
            var reply = await v.ReadAsync(8192, data.Length);
            Assert.Equal(IoStatus.Ok, reply.Status);
            Assert.Equal(data, reply.Data);
        }

        var flash = Directory.GetFiles(c.Directory, "flash.dat", SearchOption.AllDirectories);
        Assert.Single(flash);
        Assert.Equal("cache", Path.GetFileName(Path.GetDirectoryName(flash[0])));
    }
}
