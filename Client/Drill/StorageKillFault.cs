namespace Converge.Client.Drill;

/// <summary>SIGKILL a storage silo (never the primary, never below the storage floor), restart it after a short random delay.</summary>
public sealed class StorageKillFault(double weight) : FaultKind("storage-kill", weight)
{
    public override IReadOnlyList<string>? PickNodes(FaultContext context, Random rng)
    {
        var victims = context.StorageVictims();
        return victims.Count == 0 ? null : [victims[rng.Next(victims.Count)]];
    }

    public override async Task RunAsync(FaultContext context, IReadOnlyList<string> nodes, string owner, Random rng, CancellationToken stop, CancellationToken abort)
    {
        var victim = nodes[0];
        context.Cluster.Kill(victim);
        context.Recovery.FaultInjected(Name);
        context.Log($"{Name}: SIGKILL {victim}");
        await WaitAsync(Between(rng, 200, 1500), stop);
        await context.RestartAsync(victim, abort);
    }
}
