namespace Converge.Client.Drill;

/// <summary>SIGSTOP a silo for a fixed time, then SIGCONT: a hung process with its sockets open.</summary>
public sealed class PauseFault(string name, double weight, TimeSpan duration) : SuspendFault(name, weight, duration)
{
    protected override string Suspend(FaultContext context, string victim)
    {
        context.Cluster.Pause(victim);
        return $"SIGSTOP {victim}";
    }

    protected override string Restore(FaultContext context, string victim)
    {
        context.Cluster.Resume(victim);
        return $"SIGCONT {victim}";
    }
}
