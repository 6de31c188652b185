namespace Converge.Client.Drill;

/// <summary>
/// SIGKILL the compute silo holding the volume, force-attach the volume on another compute silo (the operator's path
/// for a holder known dead: the new epoch fences it), let the workload carry on there, then restart the dead silo.
/// </summary>
public sealed class ComputeKillFault(double weight) : FaultKind("compute-kill", weight)
{
    public override IReadOnlyList<string>? PickNodes(FaultContext context, Random rng)
    {
        var holder = context.Volume.Holder;
        if (!context.IsAlive(holder))
        {
            return null;
        }

        return context.OtherAliveCompute(holder, rng) is { } target ? [holder, target] : null;
    }

    public override async Task RunAsync(FaultContext context, IReadOnlyList<string> nodes, string owner, Random rng, CancellationToken stop, CancellationToken abort)
    {
        var (victim, target) = (nodes[0], nodes[1]);
        context.Cluster.Kill(victim);
        context.Recovery.FaultInjected(Name);
        context.Log($"{Name}: SIGKILL {victim} (holder)");
        await context.MoveVolumeAsync(victim, target, force: true, abort);
        context.Release(target, owner);
        await WaitAsync(Between(rng, 500, 3000), stop);
        await context.RestartAsync(victim, abort);
    }
}
