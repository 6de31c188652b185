using System.Diagnostics;

namespace Converge.Client.Drill;

/// <summary>
/// Write-resume time per fault: from the moment a fault is injected to the acknowledgement of the first write ISSUED
/// after it (a write already in flight proves nothing about recovery). Faults still pending at the end are reported
/// as unrecovered.
/// </summary>
public sealed class RecoveryClock
{
    private readonly List<PendingFault> _pending = [];
    private readonly Dictionary<string, List<double>> _recoveredMs = [];
    private int _pendingCount;

    /// <summary>Starts the clock of one fault of <paramref name="kind"/>, injected now.</summary>
    public void FaultInjected(string kind)
    {
        lock (_pending)
        {
            _pending.Add(new PendingFault(kind, Stopwatch.GetTimestamp()));
            Volatile.Write(ref _pendingCount, _pending.Count);
        }
    }

    /// <summary>A write issued at <paramref name="issuedTicks"/> (<see cref="Stopwatch.GetTimestamp"/>) was acknowledged now.</summary>
    public void WriteAcknowledged(long issuedTicks)
    {
        if (Volatile.Read(ref _pendingCount) == 0)
        {
            return;
        }

        var now = Stopwatch.GetTimestamp();
        lock (_pending)
        {
            for (var i = _pending.Count - 1; i >= 0; i--)
            {
                var fault = _pending[i];
                if (fault.InjectedTicks <= issuedTicks)
                {
                    Recovered(fault.Kind).Add(Stopwatch.GetElapsedTime(fault.InjectedTicks, now).TotalMilliseconds);
                    _pending.RemoveAt(i);
                }
            }

            Volatile.Write(ref _pendingCount, _pending.Count);
        }
    }

    /// <summary>Recovery times in milliseconds by fault kind, and the faults of each kind still waiting for a write.</summary>
    public (IReadOnlyDictionary<string, double[]> RecoveredMs, IReadOnlyDictionary<string, int> Unrecovered) Snapshot()
    {
        lock (_pending)
        {
            var recovered = _recoveredMs.ToDictionary(p => p.Key, p => p.Value.ToArray());
            var unrecovered = _pending.GroupBy(p => p.Kind).ToDictionary(g => g.Key, g => g.Count());
            return (recovered, unrecovered);
        }
    }

    /// <summary>The value at quantile <paramref name="q"/> (0..1) by the nearest-rank rule; NaN for no values.</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    private List<double> Recovered(string kind)
    {
        if (!_recoveredMs.TryGetValue(kind, out var list))
        {
            list = [];
            _recoveredMs[kind] = list;
        }

        return list;
    }

    private readonly record struct PendingFault(string Kind, long InjectedTicks);
}
