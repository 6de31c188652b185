namespace Converge.Client.Drill;

/// <summary>
/// Cuts a silo off the network for a fixed time, then joins it again (a cluster with a network namespace per silo): the
/// process runs on, its packets to and from every other silo and client are dropped, its connections hang.
/// </summary>
public sealed class PartitionFault(string name, double weight, TimeSpan duration) : SuspendFault(name, weight, duration)
{
    protected override string Suspend(FaultContext context, string victim)
    {
        context.Cluster.Partition(victim);
        return $"cut {victim} off the network";
    }

    protected override string Restore(FaultContext context, string victim)
    {
        context.Cluster.Heal(victim);
        return $"joined {victim} again";
    }
}
