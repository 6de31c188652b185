using Converge.Client;
using Converge.Tests.Infrastructure;
using Converge.Tests.Nbd;
using Converge.Volumes;
using Xunit;

namespace Converge.Tests.NbdCluster;

/// <summary>
/// One real cluster (2 compute, 2 storage silo processes) shared by every NBD end-to-end test: starting silos is the
/// slow part, so the tests share it and each works on volumes of its own, which keeps them independent of order.
/// </summary>
public sealed class NbdClusterFixture : IAsyncLifetime
{
    public const long SmallVolumeBytes = 64L * 1024 * 1024;
    public const long ImageVolumeBytes = 256L * 1024 * 1024;
    public const int VolumeBlockBytes = 4096;

    private TestCluster? _cluster;
    private ConvergeClient? _client;

    public TestCluster Cluster => _cluster ?? throw new InvalidOperationException("the cluster is not started");

    public ConvergeClient Client => _client ?? throw new InvalidOperationException("the cluster is not started");

    /// <summary>NBD port of compute-<paramref name="index"/>.</summary>
    public int NbdPort(int index) => Cluster.Layout.Nodes.Single(n => n.Name == $"compute-{index}").NbdPort;

    public string Uri(int compute, string volume) => $"nbd://127.0.0.1:{NbdPort(compute)}/{volume}";

    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.StartAsync(null, compute: 2, storage: 2);
        _client = await _cluster.ConnectAsync();
    }

    /// <summary>Creates a volume for one test; the name must be unique across the tests sharing the cluster.</summary>
    public async Task<string> CreateVolumeAsync(string name, long sizeBytes = SmallVolumeBytes)
    {
        var created = await Client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(name, sizeBytes, VolumeBlockBytes);
        Assert.True(created.Ok, $"creating volume {name}: {created.Message}");
        return name;
    }

    /// <summary>The volume's attachment epoch as the control plane records it.</summary>
    public async Task<ulong> EpochAsync(string volume)
    {
        var volumes = await Client.Cluster.GetGrain<IVolumeCatalogGrain>(0).ListAsync();
        return volumes.Single(v => v.Name == volume).Epoch;
    }

    /// <summary>The silo on compute-<paramref name="compute"/> still answers a new client after a hostile one.</summary>
    public async Task AssertServesAsync(int compute, string volume)
    {
        var output = await ToolRunner.RunOkAsync("nbdinfo", [Uri(compute, volume)], TimeSpan.FromMinutes(1));
        Assert.Contains("export-size:", output, StringComparison.Ordinal);
    }

    public async Task DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class NbdClusterCollection : ICollectionFixture<NbdClusterFixture>
{
    public const string Name = "NBD cluster";
}
