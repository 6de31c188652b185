using System.Diagnostics;

namespace Converge.Client.Drill;

/// <summary>
/// Takes a silo (never the primary) out for a fixed time without killing it, then brings it back: frozen (SIGSTOP,
/// <see cref="PauseFault"/>) or cut off the network (<see cref="PartitionFault"/>). Peers may declare it dead meanwhile,
/// and then it stops itself once back; it is restarted. When the silo holds the volume for longer than its lease, the
/// volume is moved WITHOUT force once the lease lapses, and the returning silo must find itself fenced.
/// </summary>
public abstract class SuspendFault(string name, double weight, TimeSpan duration) : FaultKind(name, weight)
{
    /// <summary>The volume lease (VolumeGrain.LeaseMs): a holder hung for longer can be replaced without force.</summary>
    private const int VolumeGrainLeaseMs = 10_000;

    public TimeSpan Duration { get; } = duration;

    /// <summary>Takes <paramref name="victim"/> out and returns what was done, for the log ("SIGSTOP storage-3").</summary>
    protected abstract string Suspend(FaultContext context, string victim);

    /// <summary>Brings <paramref name="victim"/> back (also when it was never fully taken out) and returns what was done.</summary>
    protected abstract string Restore(FaultContext context, string victim);

    public override IReadOnlyList<string>? PickNodes(FaultContext context, Random rng)
    {
        var storage = context.StorageVictims();
        // Never the last alive compute silo: with every compute silo frozen (and then declared dead) the volume has
        // nowhere to go, which is an outage of the whole compute tier, not a fault this drill models.
        var aliveCompute = context.Nodes(Converge.Cluster.NodeRoles.Compute).Where(context.IsAlive).ToArray();
        var compute = aliveCompute.Length >= 2 ? aliveCompute : [];
        var candidates = storage.Concat(compute).ToArray();
        if (candidates.Length == 0)
        {
            return null;
        }

        var victim = candidates[rng.Next(candidates.Length)];
        var moveTarget = victim == context.Volume.Holder && Duration.TotalMilliseconds > VolumeGrainLeaseMs
            ? context.OtherAliveCompute(victim, rng)
            : null;
        return moveTarget is null ? [victim] : [victim, moveTarget];
    }

    public override async Task RunAsync(FaultContext context, IReadOnlyList<string> nodes, string owner, Random rng, CancellationToken stop, CancellationToken abort)
    {
        var victim = nodes[0];
        var clock = Stopwatch.StartNew();
        var done = Suspend(context, victim);
        context.Recovery.FaultInjected(Name);
        context.Log($"{Name}: {done} for {Duration.TotalSeconds:0} s");
        Task move = Task.CompletedTask;
        using var resumed = CancellationTokenSource.CreateLinkedTokenSource(abort);
        try
        {
            if (nodes.Count > 1)
            {
                // A hung holder is not known dead, so no force: the attach is refused until its lease lapses. The move
                // runs beside the pause, which ends on time whether or not the move is done; a move not done by then
                // is abandoned (the resumed holder renews its lease and keeps the volume).
                move = MoveOffAsync(context, victim, nodes[1], owner, stop, resumed.Token);
            }

            var left = Duration - clock.Elapsed;
            if (left > TimeSpan.Zero)
            {
                await WaitAsync(left, stop);
            }
        }
        finally
        {
            var undone = Restore(context, victim);
            context.Log($"{Name}: {undone} after {clock.Elapsed.TotalSeconds:0.0} s");
            await resumed.CancelAsync();
        }

        // A silo declared dead while out stops itself once back. The claim is held while that may happen and the
        // silo is restarted here, so no other fault counts it as alive meanwhile, and the end of the run (which does not
        // cut this watch short) never starts verifying with a silo that is about to exit.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (watch.Elapsed < SelfStopWatch)
        {
            if (!context.IsRunning(victim))
            {
                context.Log($"{Name}: {victim} stopped itself once back (declared dead while out); restarting it");
                await context.RestartAsync(victim, abort);
                break;
            }

            await Task.Delay(250, abort);
        }

        await move;
    }

    private static async Task MoveOffAsync(FaultContext context, string victim, string target, string owner, CancellationToken stop, CancellationToken resumed)
    {
        try
        {
            await WaitAsync(TimeSpan.FromMilliseconds(VolumeGrainLeaseMs), stop);
            await context.MoveVolumeAsync(victim, target, force: false, resumed);
        }
        catch (OperationCanceledException) when (resumed.IsCancellationRequested)
        {
            context.Log($"volume not moved off {victim}: it was back first");
        }
        finally
        {
            context.Release(target, owner);
        }
    }

    /// <summary>How long after coming back a silo is watched for stopping itself (it learns it was declared dead within seconds).</summary>
    private static readonly TimeSpan SelfStopWatch = TimeSpan.FromSeconds(20);
}
