using System.Diagnostics;
using Converge.Client.Local;
using Converge.Cluster;
using Converge.Storage;

namespace Converge.Client.Bench;

public sealed partial class BenchRunner
{
    /// <summary>Seconds of the burst-and-sustained sequential write (see <see cref="SequentialWritePhases"/>).</summary>
    private const int SequentialPhaseSeconds = 30;

    /// <summary>Destage is given this long to drain what the earlier jobs left before the run starts.</summary>
    private static readonly TimeSpan DrainPatience = TimeSpan.FromSeconds(60);

    /// <summary>Below this much undestaged data on every storage silo, NVRAM counts as drained.</summary>
    private const long DrainedBytes = 64L << 20;

    /// <summary>
    /// Sequential 1 MiB writes over the whole volume for <see cref="SequentialPhaseSeconds"/> through
    /// <paramref name="node"/>, once destage has drained what the earlier jobs left, with every storage silo's NVRAM use
    /// sampled once a second alongside fio's bandwidth log.
    /// </summary>
    private async Task<SequentialWritePhases?> RunSequentialPhasesAsync(
        LocalCluster cluster, ClusterLayout layout, NodeRecord node, FioRunner fio, CancellationToken cancellationToken)
    {
        await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(30), cancellationToken);
        var storage = layout.OfRole(NodeRoles.Storage)
            .Select(n => client.Cluster.GetGrain<IStorageNodeGrain>(NodeRoles.PinnedKey(n.Name, IStorageNodeGrain.KeySuffix)))
            .ToList();
        var waited = Stopwatch.StartNew();
        while ((await FullestNvramAsync(storage)).UsedBytes > DrainedBytes && waited.Elapsed < DrainPatience)
        {
            await Task.Delay(500, cancellationToken);
        }

        var (left, _) = await FullestNvramAsync(storage);
        progress.WriteLine($"bench: {BenchSystems.Converge}: sequential burst and sustained, {SequentialPhaseSeconds} s of {FioJob.SeqWrite.Name} over the whole volume " +
            $"(NVRAM drained to {left >> 20} MiB in {waited.Elapsed.TotalSeconds:0} s)");

        using var sampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var fills = new List<double>();
        var sampler = SampleNvramAsync(storage, fills, sampling.Token);
        (FioMeasurement Measurement, IReadOnlyList<double> MBpsPerSecond) run;
        try
        {
            run = await fio.RunWithBandwidthLogAsync(FioJob.SeqWrite, new FioTarget.Nbd(node.NbdPort, VolumeName), _plan.VolumeSizeBytes, SequentialPhaseSeconds, cancellationToken);
        }
        finally
        {
            await sampling.CancelAsync();
            await sampler;
        }

        var phases = SequentialWritePhases.From(run.MBpsPerSecond, fills);
        progress.WriteLine(phases is null
            ? $"bench: {BenchSystems.Converge}: fio logged {run.MBpsPerSecond.Count} seconds, too few to tell burst from sustained"
            : $"bench: {BenchSystems.Converge}: {phases.Describe()}");
        return phases;
    }

    /// <summary>The storage silo with the most undestaged bytes: its use and its budget.</summary>
    private static async Task<(long UsedBytes, long BudgetBytes)> FullestNvramAsync(IReadOnlyList<IStorageNodeGrain> storage)
    {
        var statuses = await Task.WhenAll(storage.Select(s => s.GetStatusAsync()));
        var fullest = statuses.MaxBy(s => s.NvramBudgetBytes > 0 ? s.NvramUsedBytes / (double)s.NvramBudgetBytes : 0)!;
        return (fullest.NvramUsedBytes, fullest.NvramBudgetBytes);
    }

    /// <summary>Once a second until cancelled: the fullest silo's NVRAM use as a share of its budget. A missed sample is skipped.</summary>
    private static async Task SampleNvramAsync(IReadOnlyList<IStorageNodeGrain> storage, List<double> fills, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    var (used, budget) = await FullestNvramAsync(storage);
                    if (budget > 0)
                    {
                        fills.Add(used / (double)budget);
                    }
                }
                catch (Exception e) when (e is Orleans.Runtime.OrleansException or TimeoutException)
                {
                    // A silo too busy to answer within its 5 s status timeout: no sample for this second.
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }
    }
}
