using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;
using static Converge.Tests.ReadPath.ReadPathSupport;

namespace Converge.Tests.ReadPath;

/// <summary>
/// A seeded random mix of writes (aligned, unaligned, zero ranges), reads, graceful moves between two compute nodes,
/// cache evictions and waits for destage, on real silo processes, with every read compared byte for byte against an
/// in-memory model. The seed is printed first and named in every failure; CONVERGE_READ_MODEL_SEED replays it.
/// </summary>
public sealed class ReadPathModelTests(ITestOutputHelper output)
{
    private const string SeedVariable = "CONVERGE_READ_MODEL_SEED";
    private const long VolumeBytes = 16L * 1024 * 1024;
    private const int TotalOps = 10_000;

    [Fact]
    public async Task RandomWritesReadsMovesAndEvictions_EveryReadMatchesTheModel_FromEveryTier()
    {
        var seed = Environment.GetEnvironmentVariable(SeedVariable) is { Length: > 0 } text
            ? int.Parse(text, System.Globalization.CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        output.WriteLine($"seed {seed} (replay with {SeedVariable}={seed})");

        await using var c = await TestCluster.StartAsync(output, compute: 2, storage: 2);
        await using var client = await c.ConnectAsync();
        var cluster = client.Cluster;
        var created = await cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync("model", VolumeBytes, BlockBytes);
        Assert.True(created.Ok, created.Message);

        await new ReadModelRun(cluster, output, "model", seed, VolumeBytes).RunAsync(TotalOps);

        // Every tier must have served reads, or the run proved nothing about it.
        var one = await StatsAsync(cluster, "compute-1");
        var two = await StatsAsync(cluster, "compute-2");
        foreach (var stats in new[] { one, two })
        {
            output.WriteLine($"{stats.Node}: RAM {stats.RamHits}, flash {stats.FlashHits}, peer {stats.PeerHits} (rejected {stats.PeerRejected}, " +
                $"calls {stats.PeerCalls}, failures {stats.PeerFailures}, served {stats.PeerServed}), log {stats.LogReads}, " +
                $"extents {stats.ExtentReads}, zeros {stats.ZeroReads}, misses {stats.Misses} blocks");
        }

        AssertServed(seed, "RAM", one.RamHits + two.RamHits);
        AssertServed(seed, "peer", one.PeerHits + two.PeerHits);
        AssertServed(seed, "log", one.LogReads + two.LogReads);
        AssertServed(seed, "extent", one.ExtentReads + two.ExtentReads);
        AssertServed(seed, "zero", one.ZeroReads + two.ZeroReads);
    }

    private static void AssertServed(int seed, string tier, long blocks) =>
        Assert.True(blocks > 0, $"seed {seed}: no block was read from the {tier} tier, so the run did not exercise it");
}
