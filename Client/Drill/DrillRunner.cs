using System.Diagnostics;
using System.Globalization;
using Converge.Client.Bench;
using Converge.Client.Local;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Volumes;

namespace Converge.Client.Drill;

/// <summary>
/// Runs one fault drill: a fresh private cluster of real silo processes on a free port block, a volume under the
/// verifying workload, the fault scheduler for the requested time, then a read-back of every block ever written.
/// Every process it starts is resumed and killed by pid before it returns, whether it passes, fails, throws or is
/// cancelled; a temporary directory is removed (a <c>--data</c> directory is kept for inspection).
/// </summary>
public sealed class DrillRunner(string repositoryRoot, DrillOptions options, TextWriter progress)
{
    private const string VolumeName = "drill";
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Fault kinds to inject; the default mix unless a test narrows it.</summary>
    public IReadOnlyList<FaultKind>? Kinds { get; init; }

    public async Task<DrillResult> RunAsync(CancellationToken cancellationToken)
    {
        if (options.Check() is { } problem)
        {
            throw new DrillException(problem);
        }

        var temporary = options.DataDirectory is null;
        var directory = Path.GetFullPath(options.DataDirectory ?? Path.Combine(Path.GetTempPath(), "converge-drill-" + Guid.NewGuid().ToString("N")[..8]));
        if (File.Exists(ClusterLayout.FilePath(directory)))
        {
            throw new DrillException($"{directory} already holds a cluster; the drill starts a fresh one: name an empty or new directory");
        }

        var cluster = new LocalCluster(repositoryRoot, directory, new PrefixWriter(progress, "drill: "));
        try
        {
            return await RunOnClusterAsync(cluster, cancellationToken);
        }
        finally
        {
            await TearDownAsync(cluster);
            if (temporary)
            {
                TryDelete(directory);
            }
            else
            {
                progress.WriteLine($"drill: cluster data and silo logs kept in {directory}");
            }
        }
    }

    private async Task<DrillResult> RunOnClusterAsync(LocalCluster cluster, CancellationToken cancellationToken)
    {
        var offset = ClusterLayout.FindFreePortOffset(5000, 20, options.Compute, options.Storage)
            ?? throw new DrillException("found no free block of loopback ports for the drill cluster");
        progress.WriteLine($"drill: {options}; starting the cluster in {cluster.DataDirectory} (port offset {offset})");
        await cluster.UpAsync(new UpOptions(options.Compute, options.Storage, Postgres: false, offset, Namespaces: options.Partitions), cancellationToken);
        await using var client = await cluster.ConnectAsync(ConnectTimeout, cancellationToken);
        var created = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(VolumeName, DrillOptions.VolumeSizeBytes, BlockStamp.BlockBytes);
        if (!created.Ok || created.Volume is null)
        {
            throw new DrillException($"could not create the drill volume: {created.Message}");
        }

        var model = new DrillModel(created.Volume.VolumeId, options.WorkingSetBlocks)
        {
        };
        var recovery = new RecoveryClock();
        await using var volume = new DrillVolume(client.Cluster, VolumeName, cluster.Layout!.OfRole(NodeRoles.Compute).First().Name);
        model.OnProblem = (block, problem) =>
        {
            progress.WriteLine($"drill: PROBLEM {problem}");
            _ = DescribeBlockAsync(client.Cluster, volume.Holder, model, block);
        };
        var workload = new DrillWorkload(volume, model, recovery, options.Writers, options.Readers, options.Seed);
        var context = new FaultContext(cluster, volume, recovery, line => progress.WriteLine($"drill: {line}"));
        var kinds = Kinds ?? FaultScheduler.DefaultKinds(options.Duration, options.Partitions);
        var scheduler = new FaultScheduler(context, kinds, options.Seed, options.MeanFaultInterval);

        var clock = Stopwatch.StartNew();
        using var stopFaults = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var stopWorkload = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var writing = workload.RunAsync(stopWorkload.Token);
        var faulting = scheduler.RunAsync(stopFaults.Token, cancellationToken);
        try
        {
            while (!faulting.IsCompleted && (clock.Elapsed < options.Duration || (clock.Elapsed < options.Duration + options.Overtime && !RequiredFaultsMet(scheduler))))
            {
                if (clock.Elapsed >= options.Duration && scheduler.Only is null)
                {
                    // Overtime: only the kinds still short of their required count.
                    scheduler.Only = kind => scheduler.Injected.GetValueOrDefault(kind) < options.RequiredFaults.GetValueOrDefault(kind);
                }

                var left = (clock.Elapsed < options.Duration ? options.Duration : options.Duration + options.Overtime) - clock.Elapsed;
                await Task.WhenAny(faulting, Task.Delay(left < ProgressEvery ? left : ProgressEvery, cancellationToken));
                cancellationToken.ThrowIfCancellationRequested();
                progress.WriteLine(ProgressLine(clock.Elapsed, workload, model, scheduler, volume));
            }

            // Faults stop first and are undone; the workload runs on through their recovery, then stops too.
            await stopFaults.CancelAsync();
            await faulting;
        }
        finally
        {
            await stopFaults.CancelAsync();
            await stopWorkload.CancelAsync();
            await writing;
        }

        progress.WriteLine($"drill: faults over after {clock.Elapsed.TotalSeconds:0} s; reading back every written block from {volume.Holder}");
        var (verified, unverified) = await workload.VerifyAllAsync(new Progress<string>(line => progress.WriteLine($"drill: {line}")), cancellationToken);
        var (recovered, pending) = recovery.Snapshot();
        var injected = scheduler.Injected;
        var stats = kinds.Where(k => injected.ContainsKey(k.Name)).Select(k =>
        {
            var times = recovered.GetValueOrDefault(k.Name) ?? [];
            return new RecoveryStats(k.Name, injected[k.Name], times.Length, pending.GetValueOrDefault(k.Name),
                RecoveryClock.Quantile(times, 0.5), RecoveryClock.Quantile(times, 0.99), times.Length == 0 ? double.NaN : times.Max());
        }).ToArray();
        return new DrillResult(
            options.Seed, options.ToString(), clock.Elapsed.TotalSeconds,
            workload.WritesAcknowledged, workload.WritesFailed, workload.ReadsOk, workload.ReadsFailed,
            verified, model.LostWrites, model.WrongReads, unverified,
            injected, stats, scheduler.UnplannedRestarts, volume.Moves, workload.LongestWriteStallMs,
            model.Problems, scheduler.Errors, volume.Failures);
    }

    private bool RequiredFaultsMet(FaultScheduler scheduler)
    {
        var injected = scheduler.Injected;
        return options.RequiredFaults.All(r => injected.GetValueOrDefault(r.Key) >= r.Value);
    }

    private static string ProgressLine(TimeSpan elapsed, DrillWorkload workload, DrillModel model, FaultScheduler scheduler, DrillVolume volume) =>
        string.Create(CultureInfo.InvariantCulture,
            $"drill: {elapsed.TotalSeconds,5:0} s  writes {workload.WritesAcknowledged} ok / {workload.WritesFailed} failed  reads {workload.ReadsOk}  faults {string.Join(' ', scheduler.Injected.OrderBy(p => p.Key).Select(p => $"{p.Key}={p.Value}"))}  lost {model.LostWrites} wrong {model.WrongReads}  holder {volume.Holder}");

    /// <summary>Resumes every silo (a stopped process ignores nothing but SIGKILL, yet a resumed one exits cleanly) and kills each by pid.</summary>
    private async Task TearDownAsync(LocalCluster cluster)
    {
        foreach (var node in cluster.Layout?.Nodes ?? [])
        {
            if (SiloProcess.IsRunning(node.Pid, node.Name))
            {
                SiloProcess.Continue(node.Pid);
                SiloProcess.Kill(node.Pid);
            }
        }

        foreach (var node in cluster.Layout?.Nodes ?? [])
        {
            if (!await SiloProcess.WaitForExitAsync(node.Pid, node.Name, TimeSpan.FromSeconds(10)))
            {
                progress.WriteLine($"drill: {node.Name} (pid {node.Pid}) still runs 10 s after SIGKILL");
            }
        }

        if (cluster.Layout is { UsesNamespaces: true } layout)
        {
            NetworkNamespaces.Remove(layout);
        }
    }

    private void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException e)
        {
            progress.WriteLine($"drill: could not remove {directory}: {e.Message}");
        }
    }

    /// <summary>Prints every copy of a block found wrong, as the holder's controller sees it, with the version each holds.</summary>
    private async Task DescribeBlockAsync(IClusterClient client, string holder, DrillModel model, long block)
    {
        try
        {
            var copies = await client.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey(holder, VolumeName)).DescribeBlockAsync(block);
            var lines = new System.Text.StringBuilder();
            lines.Append(CultureInfo.InvariantCulture, $"drill: block {block} as {holder} sees it now:");
            foreach (var copy in copies)
            {
                var version = "";
                if (copy.Data is { Length: >= BlockStamp.BlockBytes } data)
                {
                    var state = BlockStamp.Inspect(data.AsSpan(0, BlockStamp.BlockBytes), model.VolumeId, block * BlockStamp.BlockBytes, out var v);
                    version = state == StampState.Valid ? $" version {v}" : $" {state}";
                }

                lines.Append(CultureInfo.InvariantCulture, $"\n    {copy.Source}: lsn {copy.Lsn}{version} {copy.Note}");
            }

            progress.WriteLine(lines.ToString());
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException)
        {
            progress.WriteLine($"drill: could not describe block {block}: {e.Message}");
        }
    }
}
