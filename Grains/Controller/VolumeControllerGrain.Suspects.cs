using System.Diagnostics;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>How long a node that just failed a read is asked last (membership takes seconds to declare it dead).</summary>
    private static readonly TimeSpan SuspectFor = TimeSpan.FromSeconds(10);

    private readonly Dictionary<string, long> _suspectUntilTicks = new(StringComparer.Ordinal);

    /// <summary>A read from <paramref name="node"/> failed or timed out: prefer its partner for a while.</summary>
    private void MarkSuspect(string node) =>
        _suspectUntilTicks[node] = Stopwatch.GetTimestamp() + (long)(SuspectFor.TotalSeconds * Stopwatch.Frequency);

    private void ClearSuspect(string node) => _suspectUntilTicks.Remove(node);

    private bool IsSuspect(string node) =>
        _suspectUntilTicks.TryGetValue(node, out var until) && Stopwatch.GetTimestamp() < until;

    /// <summary>
    /// The two copies in the order to try them: as given, unless the first recently failed and the second did not. A
    /// killed node keeps answering nothing until membership declares it dead; asking it first on every read would add
    /// a timeout to each.
    /// </summary>
    private (string First, string Second) ReadOrder(string a, string b) => IsSuspect(a) && !IsSuspect(b) ? (b, a) : (a, b);
}
