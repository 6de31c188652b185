using System.Collections.Concurrent;
using Converge.Client.Local;
using Converge.Cluster;

namespace Converge.Client.Drill;

/// <summary>
/// What fault kinds act on: the local cluster's nodes, which of them a fault currently owns (claimed), the drill's
/// volume and the recovery clock. A node is ALIVE when its process runs and no fault owns it; the storage floor
/// (<see cref="MinimumAliveStorage"/>) is checked against that, so a paused node never counts as alive.
/// </summary>
public sealed class FaultContext(LocalCluster cluster, DrillVolume volume, RecoveryClock recovery, Action<string> log)
{
    /// <summary>Storage silos that must stay alive through any fault: both mirrors of a write need a live node.</summary>
    public const int MinimumAliveStorage = 2;

    private readonly ConcurrentDictionary<string, string> _claims = new();

    public LocalCluster Cluster { get; } = cluster;

    public DrillVolume Volume { get; } = volume;

    public RecoveryClock Recovery { get; } = recovery;

    public ClusterLayout Layout => Cluster.Layout ?? throw new InvalidOperationException("the drill cluster has no layout");

    /// <summary>
    /// The primary storage silo holds the embedded membership table and the control plane: losing it ends the cluster,
    /// which is not a fault this drill models, so no fault ever targets it.
    /// </summary>
    public string Primary => Layout.Primary.Name;

    public void Log(string line) => log(line);

    public bool IsRunning(string node) => Layout.Find(node) is { } record && SiloProcess.IsRunning(record.Pid, record.Name);

    public bool IsAlive(string node) => !_claims.ContainsKey(node) && IsRunning(node);

    public bool IsClaimed(string node) => _claims.ContainsKey(node);

    public IReadOnlyList<string> Nodes(string role) => Layout.OfRole(role).Select(n => n.Name).ToArray();

    public int AliveStorage() => Nodes(NodeRoles.Storage).Count(IsAlive);

    /// <summary>Alive storage silos other than the primary that may be taken down without breaking the floor.</summary>
    public IReadOnlyList<string> StorageVictims() =>
        AliveStorage() - 1 < MinimumAliveStorage
            ? []
            : Nodes(NodeRoles.Storage).Where(n => n != Primary && IsAlive(n)).ToArray();

    /// <summary>An alive compute node other than <paramref name="except"/>, or null.</summary>
    public string? OtherAliveCompute(string except, Random rng)
    {
        var candidates = Nodes(NodeRoles.Compute).Where(n => n != except && IsAlive(n)).ToArray();
        return candidates.Length == 0 ? null : candidates[rng.Next(candidates.Length)];
    }

    /// <summary>Claims <paramref name="node"/> for the fault named <paramref name="owner"/> (unique per fault); false when another owns it.</summary>
    public bool TryClaim(string node, string owner) => _claims.TryAdd(node, owner);

    /// <summary>Releases <paramref name="node"/> if <paramref name="owner"/> still holds it (an early release may have let another fault claim it since).</summary>
    public void Release(string node, string owner) => _claims.TryRemove(new KeyValuePair<string, string>(node, owner));

    /// <summary>Nodes a fault currently owns (paused ones among them), so teardown can resume them.</summary>
    public IReadOnlyCollection<string> Claimed => _claims.Keys.ToArray();

    /// <summary>
    /// Moves the volume off <paramref name="from"/> to <paramref name="to"/>, retrying (bounded) while the control plane
    /// is briefly unreachable or, without <paramref name="force"/>, while the old holder's lease still runs.
    /// </summary>
    public async Task MoveVolumeAsync(string from, string to, bool force, CancellationToken cancellationToken)
    {
        const int maxAttempts = 60;
        string? refusal = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var attempt = 0; attempt < maxAttempts && clock.Elapsed < MoveLimit; attempt++)
        {
            refusal = await Volume.MoveToAsync(to, force);
            if (refusal is null)
            {
                Log($"volume moved {from} -> {to}{(force ? " (forced)" : "")}");
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
        }

        throw new DrillException($"could not move the volume from {from} to {to} in {maxAttempts} attempts or {MoveLimit.TotalSeconds:0} s: {refusal}");
    }

    /// <summary>How long a move may keep trying in all (each attach call may itself wait for its timeout).</summary>
    private static readonly TimeSpan MoveLimit = TimeSpan.FromSeconds(90);

    /// <summary>Starts <paramref name="node"/> again and waits (bounded by the cluster's join timeout) until it has joined.</summary>
    public async Task RestartAsync(string node, CancellationToken cancellationToken)
    {
        await Cluster.StartNodeAsync(node, cancellationToken);
        Log($"{node} restarted");
    }
}

/// <summary>The drill could not carry on (setup failed, a node would not restart, the cluster was lost).</summary>
public sealed class DrillException(string message, Exception? inner = null) : Exception(message, inner);
