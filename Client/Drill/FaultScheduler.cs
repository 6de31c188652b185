namespace Converge.Client.Drill;

/// <summary>
/// Injects faults, driven by a seeded random source, until stopped: every tick (a random interval around the mean)
/// it first supervises (restarts a silo that exited on its own, moves the volume off a dead holder), then picks one
/// kind among those that can be injected now, weighted, claims its nodes and runs it in the background. Faults
/// overlap; claims keep two faults off one node and the kinds keep the storage floor. Every fault is undone before
/// <see cref="RunAsync"/> returns.
/// </summary>
public sealed class FaultScheduler(FaultContext context, IReadOnlyList<FaultKind> kinds, int seed, TimeSpan meanInterval)
{
    /// <summary>Failed restarts or moves tolerated before the drill gives up on the cluster.</summary>
    private const int MaxErrors = 5;
    private const int MaxRunningFaults = 8;
    private const string Supervisor = "supervisor";

    private readonly Random _rng = new(seed);
    private readonly Dictionary<string, int> _injected = [];
    private readonly List<string> _errors = [];
    private readonly List<Task> _running = [];
    private int _unplannedRestarts;

    /// <summary>
    /// When set, only kinds it accepts are drawn (while any of them has weight): the run's overtime uses it to inject
    /// only the kinds whose required count is not met yet.
    /// </summary>
    public Func<string, bool>? Only { get; set; }

    /// <summary>Faults injected so far, by kind.</summary>
    public IReadOnlyDictionary<string, int> Injected
    {
        get
        {
            lock (_injected)
            {
                return new Dictionary<string, int>(_injected);
            }
        }
    }

    /// <summary>Silos restarted because they exited on their own (declared dead while paused, then stopped).</summary>
    public int UnplannedRestarts => Volatile.Read(ref _unplannedRestarts);

    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (_errors)
            {
                return _errors.ToArray();
            }
        }
    }

    /// <summary>Injects faults until <paramref name="stop"/> fires, then waits for every fault to be undone.</summary>
    public async Task RunAsync(CancellationToken stop, CancellationToken abort)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var wait = TimeSpan.FromMilliseconds(meanInterval.TotalMilliseconds * (0.5 + _rng.NextDouble()));
                try
                {
                    await Task.Delay(wait, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                _running.RemoveAll(t => t.IsCompleted);
                if (Errors.Count >= MaxErrors)
                {
                    throw new DrillException($"the cluster did not recover from faults {MaxErrors} times: {string.Join("; ", Errors)}");
                }

                Supervise(abort);
                if (_running.Count < MaxRunningFaults)
                {
                    InjectOne(stop, abort);
                }
            }
        }
        finally
        {
            await Task.WhenAll(_running);
        }

        // Faults are undone; anything that exited on its own meanwhile comes back before verification, and the
        // cluster must then stay whole for a while (a silo resumed late may still stop itself).
        var settle = System.Diagnostics.Stopwatch.StartNew();
        var whole = System.Diagnostics.Stopwatch.StartNew();
        while (settle.Elapsed < SettleLimit)
        {
            Supervise(abort);
            await Task.WhenAll(_running);
            _running.Clear();
            if (!context.Layout.Nodes.All(n => context.IsRunning(n.Name)))
            {
                whole.Restart();
            }
            else if (whole.Elapsed >= SettleWhole)
            {
                return;
            }

            await Task.Delay(500, abort);
        }

        throw new DrillException($"the cluster did not stay whole for {SettleWhole.TotalSeconds:0} s within {SettleLimit.TotalSeconds:0} s of the last fault");
    }

    /// <summary>How long every silo must run, untouched, before the final read-back.</summary>
    private static readonly TimeSpan SettleWhole = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan SettleLimit = TimeSpan.FromSeconds(120);

    private void InjectOne(CancellationToken stop, CancellationToken abort)
    {
        // Draw the kind first, then ask it for nodes: a kind that cannot be injected now skips the tick rather than
        // handing it to another kind, so always-possible pauses cannot crowd out kills waiting for a restart.
        var only = Only;
        var eligible = only is null ? kinds : kinds.Where(k => only(k.Name) && k.Weight > 0).ToArray();
        if (eligible.Count == 0)
        {
            eligible = kinds;
        }

        var draw = _rng.NextDouble() * eligible.Sum(k => k.Weight);
        var chosen = eligible[^1];
        foreach (var kind in eligible)
        {
            draw -= kind.Weight;
            if (draw < 0)
            {
                chosen = kind;
                break;
            }
        }

        if (chosen.Weight <= 0 || chosen.PickNodes(context, _rng) is not { } picked)
        {
            return;
        }

        int number;
        lock (_injected)
        {
            number = _injected.GetValueOrDefault(chosen.Name) + 1;
        }

        var owner = $"{chosen.Name}#{number}";
        if (!ClaimAll(picked, owner))
        {
            return;
        }

        lock (_injected)
        {
            _injected[chosen.Name] = number;
        }

        var faultRng = new Random(_rng.Next());
        _running.Add(Task.Run(() => RunFaultAsync(chosen, picked, owner, faultRng, stop, abort), CancellationToken.None));
    }

    private async Task RunFaultAsync(FaultKind kind, IReadOnlyList<string> nodes, string owner, Random rng, CancellationToken stop, CancellationToken abort)
    {
        try
        {
            await kind.RunAsync(context, nodes, owner, rng, stop, abort);
        }
        catch (Exception e) when (e is not OperationCanceledException || !abort.IsCancellationRequested)
        {
            Fail($"{kind.Name} on {string.Join(", ", nodes)}: {e.Message}");
        }
        finally
        {
            foreach (var node in nodes)
            {
                context.Release(node, owner);
            }
        }
    }

    /// <summary>
    /// Brings back what no fault owns but is down: a silo that stopped itself, and the volume on a dead holder. The
    /// primary exiting ends the drill: the cluster's membership and control plane live there.
    /// </summary>
    private void Supervise(CancellationToken abort)
    {
        if (!context.IsClaimed(context.Primary) && !context.IsRunning(context.Primary))
        {
            throw new DrillException($"{context.Primary} (the primary: membership and control plane) exited; see {context.Cluster.LogPath(context.Primary)}");
        }

        var holder = context.Volume.Holder;
        if (!context.IsClaimed(holder) && !context.IsRunning(holder) && context.OtherAliveCompute(holder, _rng) is { } target
            && ClaimAll([holder, target], Supervisor))
        {
            context.Log($"supervisor: holder {holder} is down; moving the volume to {target}");
            _running.Add(Task.Run(() => SuperviseAsync(holder, target, abort), CancellationToken.None));
        }

        foreach (var node in context.Layout.Nodes.Select(n => n.Name))
        {
            if (!context.IsRunning(node) && context.TryClaim(node, Supervisor))
            {
                Interlocked.Increment(ref _unplannedRestarts);
                context.Log($"supervisor: {node} is down without a fault owning it; restarting it");
                _running.Add(Task.Run(() => RestartAsync(node, abort), CancellationToken.None));
            }
        }
    }

    private async Task SuperviseAsync(string holder, string target, CancellationToken abort)
    {
        try
        {
            await context.MoveVolumeAsync(holder, target, force: true, abort);
        }
        catch (Exception e) when (e is not OperationCanceledException || !abort.IsCancellationRequested)
        {
            Fail($"supervisor moving the volume to {target}: {e.Message}");
        }
        finally
        {
            context.Release(target, Supervisor);
            context.Release(holder, Supervisor);
        }
    }

    private async Task RestartAsync(string node, CancellationToken abort)
    {
        try
        {
            await context.RestartAsync(node, abort);
        }
        catch (Exception e) when (e is not OperationCanceledException || !abort.IsCancellationRequested)
        {
            Fail($"supervisor restarting {node}: {e.Message}");
        }
        finally
        {
            context.Release(node, Supervisor);
        }
    }

    private bool ClaimAll(IReadOnlyList<string> nodes, string owner)
    {
        for (var i = 0; i < nodes.Count; i++)
        {
            if (!context.TryClaim(nodes[i], owner))
            {
                for (var j = 0; j < i; j++)
                {
                    context.Release(nodes[j], owner);
                }

                return false;
            }
        }

        return true;
    }

    private void Fail(string what)
    {
        context.Log("error: " + what);
        lock (_errors)
        {
            _errors.Add(what);
        }
    }

    /// <summary>
    /// The default mix: storage kills most often, then compute kills, pauses and (with <paramref name="partitions"/>)
    /// network partitions; long pauses and long partitions only in long runs.
    /// </summary>
    public static IReadOnlyList<FaultKind> DefaultKinds(TimeSpan runDuration, bool partitions)
    {
        var longRun = runDuration >= TimeSpan.FromMinutes(10);
        var kinds = new List<FaultKind>
        {
            new StorageKillFault(weight: 0.5),
            new ComputeKillFault(weight: 0.25),
            new PauseFault("pause", weight: longRun ? 0.2 : 0.25, TimeSpan.FromSeconds(3)),
            new PauseFault("long-pause", weight: longRun ? 0.05 : 0, TimeSpan.FromSeconds(30)),
        };
        if (partitions)
        {
            kinds.Add(new PartitionFault("partition", weight: 0.15, TimeSpan.FromSeconds(5)));
            kinds.Add(new PartitionFault("long-partition", weight: longRun ? 0.05 : 0, TimeSpan.FromSeconds(20)));
        }

        return kinds;
    }
}
