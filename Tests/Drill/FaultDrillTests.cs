using Converge.Client.Drill;
using Converge.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.Drill;

/// <summary>
/// The fault drill, in process, on real silo processes (2 compute + 4 storage, each in a network namespace of its own):
/// dense SIGKILLs of storage silos and of the volume's holder, SIGSTOPs and network partitions, under the verifying
/// workload. CONVERGE_DRILL_SEED replays a schedule.
/// </summary>
public sealed class FaultDrillTests(ITestOutputHelper output)
{
    [Fact, Trait("Category", "Drill")]
    public async Task AcknowledgedWrites_SurviveDenseStorageAndHolderKills()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("CONVERGE_DRILL_SEED"), System.Globalization.CultureInfo.InvariantCulture, out var s)
            ? s
            : Random.Shared.Next();
        var options = new DrillOptions(TimeSpan.FromSeconds(150), seed, Storage: 4)
        {
            MeanFaultInterval = TimeSpan.FromSeconds(1),
            // On a slow machine silo restarts take longer and kills come slower: run on (bounded) until the counts are met.
            RequiredFaults = new Dictionary<string, int> { ["storage-kill"] = 20, ["compute-kill"] = 5, ["partition"] = 2 },
            Overtime = TimeSpan.FromSeconds(150),
        };
        var progress = new TestOutputWriter(output);
        // Storage kills are limited by restart time: with four storage silos two may be down at once (two stay alive for
        // the mirrors), and kills get most of the weight.
        var runner = new DrillRunner(TestCluster.RepositoryRoot, options, progress)
        {
            Kinds =
            [
                new StorageKillFault(weight: 0.65),
                new ComputeKillFault(weight: 0.2),
                new PauseFault("pause", weight: 0.1, TimeSpan.FromSeconds(3)),
                new PartitionFault("partition", weight: 0.2, TimeSpan.FromSeconds(5)),
            ],
        };

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(9));
        var result = await runner.RunAsync(timeout.Token);
        output.WriteLine(result.ToText());

        var context = $"seed {seed} (replay with CONVERGE_DRILL_SEED={seed})";
        Assert.True(result.AcknowledgedWritesLost == 0, $"{context}: {result.AcknowledgedWritesLost} acknowledged writes lost: {string.Join("; ", result.Problems)}");
        Assert.True(result.WrongReads == 0, $"{context}: {result.WrongReads} wrong reads: {string.Join("; ", result.Problems)}");
        Assert.True(result.UnverifiedBlocks == 0, $"{context}: {result.UnverifiedBlocks} written blocks could not be read back");
        Assert.True(result.Errors.Count == 0, $"{context}: the cluster did not recover: {string.Join("; ", result.Errors)}");
        Assert.True(result.FaultsByKind.GetValueOrDefault("storage-kill") >= 20, $"{context}: only {result.FaultsByKind.GetValueOrDefault("storage-kill")} storage kills");
        Assert.True(result.FaultsByKind.GetValueOrDefault("compute-kill") >= 5, $"{context}: only {result.FaultsByKind.GetValueOrDefault("compute-kill")} compute kills");
        Assert.True(result.FaultsByKind.GetValueOrDefault("partition") >= 2, $"{context}: only {result.FaultsByKind.GetValueOrDefault("partition")} partitions");
        Assert.True(result.WritesAcknowledged > 1000, $"{context}: only {result.WritesAcknowledged} writes acknowledged");
        Assert.True(result.BlocksVerified > 500, $"{context}: only {result.BlocksVerified} blocks read back");
    }

    private sealed class TestOutputWriter(ITestOutputHelper output) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            try
            {
                output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {value}");
            }
            catch (InvalidOperationException)
            {
                // The test has finished; late progress lines have nowhere to go.
            }
        }
    }
}
