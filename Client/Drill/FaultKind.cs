namespace Converge.Client.Drill;

/// <summary>
/// One kind of fault the scheduler can inject. A kind picks its victim from the nodes alive now (or declines), then
/// runs the whole fault: inject, start the recovery clock at the moment of injection, and undo it (restart, resume)
/// before returning, also when <c>stop</c> fires early or it fails. New kinds (network partitions) are added by
/// subclassing and listing them in <see cref="FaultScheduler"/>; nothing else needs to change.
/// </summary>
public abstract class FaultKind(string name, double weight)
{
    /// <summary>The name reported per fault kind (storage-kill, compute-kill, pause...).</summary>
    public string Name { get; } = name;

    /// <summary>Relative chance of being chosen among the kinds that can be injected now.</summary>
    public double Weight { get; } = weight;

    /// <summary>
    /// The nodes this fault would take, first the victim, claimed by the scheduler before <see cref="RunAsync"/>;
    /// null when the fault cannot be injected now without breaking the drill's floors.
    /// </summary>
    public abstract IReadOnlyList<string>? PickNodes(FaultContext context, Random rng);

    /// <summary>
    /// Injects the fault on <paramref name="nodes"/> (as picked) and undoes it. <paramref name="stop"/> shortens waits
    /// (the run is ending); <paramref name="abort"/> (Ctrl-C) abandons the undo, which teardown then does by pid.
    /// </summary>
    /// <paramref name="owner"/> is the claim on those nodes: release one early only with it.
    public abstract Task RunAsync(FaultContext context, IReadOnlyList<string> nodes, string owner, Random rng, CancellationToken stop, CancellationToken abort);

    /// <summary>Waits <paramref name="delay"/>, or less when the run is stopping.</summary>
    protected static async Task WaitAsync(TimeSpan delay, CancellationToken stop)
    {
        try
        {
            await Task.Delay(delay, stop);
        }
        catch (OperationCanceledException)
        {
            // Stopping: undo the fault now.
        }
    }

    protected static TimeSpan Between(Random rng, int minMs, int maxMs) => TimeSpan.FromMilliseconds(rng.Next(minMs, maxMs));
}
