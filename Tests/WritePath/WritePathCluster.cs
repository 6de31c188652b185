using Converge.Client;
using Converge.DataPath;
using Converge.Storage;
using Converge.Cluster;
using Converge.Grains.Io;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// One real cluster (2 compute, 3 storage silo processes) shared by the write-path tests, with the storage nodes'
/// flush-hold trigger enabled (<c>CONVERGE_FAULTS</c>, docs/faults.md). Each test uses its own volume. storage-1 is
/// the embedded mode's primary (it holds membership) and is never killed.
/// </summary>
public sealed class WritePathCluster : IAsyncLifetime
{
    private TestCluster? _cluster;
    private ConvergeClient? _client;

    public string FaultDirectory { get; } = Path.Combine(Path.GetTempPath(), "converge-test-faults-" + Guid.NewGuid().ToString("N")[..8]);

    public TestCluster Cluster => _cluster!;

    public IClusterClient Grains => _client!.Cluster;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(FaultDirectory);
        // Inherited by the silo processes started now and restarted later; cleared when the cluster goes.
        Environment.SetEnvironmentVariable(FaultTrigger.EnvironmentVariable, FaultDirectory);
        _cluster = await TestCluster.StartAsync(null, compute: 2, storage: 3);
        _client = await _cluster.ConnectAsync();
    }

    public async Task DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        if (_cluster is not null && Environment.GetEnvironmentVariable("CONVERGE_KEEP_LOGS") is { Length: > 0 } keep)
        {
            // For diagnosing a failed drill: the silo logs outlive the cluster's temporary directory.
            CopyDirectory(Path.Combine(_cluster.Directory, "logs"), keep);
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        Environment.SetEnvironmentVariable(FaultTrigger.EnvironmentVariable, null);
        Directory.Delete(FaultDirectory, recursive: true);
    }

    public async Task<Guid> CreateVolumeAsync(string name, long sizeBytes)
    {
        var created = await Grains.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(name, sizeBytes, BlockPattern.BlockBytes);
        Assert.True(created.Ok, created.Message);
        return created.Volume!.VolumeId;
    }

    public string LogDirectory(string node) => Path.Combine(Cluster.Directory, "nodes", node, "log");

    public int Pid(string node) => Cluster.Layout.Nodes.Single(n => n.Name == node).Pid;

    public async Task RestartAsync(string node, IReadOnlyList<string>? wrapper = null)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await Cluster.Local.StartNodeAsync(node, timeout.Token, wrapper);
    }

    /// <summary>Waits (bounded) until a restarted node answers with an unpoisoned log; calls may reach its old instance first.</summary>
    public Task WaitUntilLogHealthyAsync(string node, TimeSpan patience) =>
        TestCluster.WaitUntilAsync(
            async () =>
            {
                try
                {
                    return !(await NodeGrain(node).GetLogStatsAsync()).Poisoned;
                }
                catch (Exception e) when (e is Orleans.Runtime.OrleansException or TimeoutException or Converge.Grains.Placement.NodeUnavailableException)
                {
                    return false;
                }
            },
            patience,
            $"{node} to serve an unpoisoned log after its restart");

    /// <summary>The volume's open segment; the volume grain may be reactivating after its silo was killed, so bounded retries.</summary>
    public Task<SegmentRecord> OpenSegmentAsync(string volume) => OpenSegmentAsync(Grains, volume);

    /// <summary>The open segment of <paramref name="volume"/> as <paramref name="grains"/> sees it, with bounded retries.</summary>
    public static async Task<SegmentRecord> OpenSegmentAsync(IClusterClient grains, string volume)
    {
        SegmentRecord? open = null;
        await TestCluster.WaitUntilAsync(
            async () =>
            {
                try
                {
                    open = (await grains.GetGrain<IVolumeGrain>(volume).GetSegmentsAsync()).Last(s => !s.Sealed);
                    return true;
                }
                catch (Orleans.Runtime.OrleansException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(30),
            $"the segment catalogue of {volume}");
        return open!;
    }

    public IStorageNodeGrain NodeGrain(string node) => Grains.GetGrain<IStorageNodeGrain>(NodeRoles.PinnedKey(node, IStorageNodeGrain.KeySuffix));

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        }
    }
}
