using System.Diagnostics;
using Converge.Cluster;
using Converge.Grains.Cluster;
using Converge.Storage;
using Converge.Volumes;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Converge.Grains.Rereplication;

/// <summary>Persisted roster (grain storage "meta"): the storage nodes removed for good.</summary>
[GenerateSerializer, Alias("Converge.StorageRosterState")]
public sealed class StorageRosterState
{
    [Id(0)] public List<string> Removed { get; set; } = [];
}

/// <summary>
/// The control plane's record of removed storage nodes, and the driver of re-replication: every placement group with a
/// replica on a removed node gets a new replica on a live node (fewest replicas first), filled from the survivor,
/// and serves reads only once the copy is durable (docs/destage.md). Reentrant so progress can be read while it runs.
/// </summary>
[Placement.ControlPlanePlacement, Reentrant]
public sealed partial class StorageRosterGrain(
    [PersistentState("roster", MetadataStorage.Name)] IPersistentState<StorageRosterState> state,
    ClusterView clusterView,
    LocalNode localNode,
    ILogger<StorageRosterGrain> logger) : Grain, IStorageRosterGrain
{
    /// <summary>Groups copied at once (each holds one 1 MiB range in flight).</summary>
    public const int MaxConcurrentGroups = 4;

    private const int MaxPasses = 5;
    private static readonly TimeSpan PassRetryDelay = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Storage nodes this activation has seen active or found in the membership table, and since when each of them has
    /// not been active (automatic removal). The table matters when this activation started after the node died (it may
    /// even have lived on that node): its dead incarnation is listed there, so its clock still starts.
    /// </summary>
    private readonly HashSet<string> _known = [];
    private readonly Dictionary<string, long> _downSince = [];
    private readonly HashSet<string> _refusalLogged = [];

    private Task _job = Task.CompletedTask;
    private int _groupsToCopy;
    private int _groupsCopied;
    private int _groupsFailed;
    private long _bytesCopied;
    private long _passes;
    private long _startedTicks;
    private long _endedTicks;
    private string _lastError = "";

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // A control plane that restarted mid-way resumes: moves already begun are found in the maps as filling.
        if (state.State.Removed.Count > 0)
        {
            StartJob();
        }

        return Task.CompletedTask;
    }

    public async Task<RemoveNodeResult> RemoveNodeAsync(string node)
    {
        if (string.IsNullOrWhiteSpace(node) || !node.StartsWith(NodeRoles.Storage + "-", StringComparison.Ordinal)
            || !int.TryParse(node.AsSpan(NodeRoles.Storage.Length + 1), out var index) || index < 1)
        {
            return new RemoveNodeResult(false, $"'{node}' is not a storage node name (storage-N)");
        }

        if (node == localNode.Name)
        {
            return new RemoveNodeResult(false, $"{node} hosts the control plane and cannot be removed");
        }

        if (state.State.Removed.Contains(node))
        {
            StartJob();
            return new RemoveNodeResult(true, $"{node} was already removed; re-replication checked again");
        }

        var others = clusterView.ActiveNodes(NodeRoles.Storage).Where(n => n != node && !state.State.Removed.Contains(n)).ToList();
        if (others.Count < 2)
        {
            return new RemoveNodeResult(false, $"removing {node} leaves {others.Count} live storage nodes; two replicas need at least two");
        }

        state.State.Removed.Add(node);
        try
        {
            await state.WriteStateAsync();
        }
        catch
        {
            state.State.Removed.Remove(node);
            throw;
        }

        LogRemoved(node);
        try
        {
            // On contact: a removed node that still runs stops serving at once.
            await GrainFactory.GetGrain<IStorageNodeGrain>(IStorageNodeGrain.Key(node)).FenceRemovedAsync();
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or Placement.NodeUnavailableException)
        {
            // Down: it fences itself when it starts again (NodeFenceService).
        }

        StartJob();
        return new RemoveNodeResult(true, $"{node} removed; re-replication started");
    }

    public async Task<string[]> CheckDeadNodesAsync(TimeSpan removeAfter)
    {
        var now = Stopwatch.GetTimestamp();
        var active = clusterView.ActiveNodes(NodeRoles.Storage);
        foreach (var node in active)
        {
            _known.Add(node);
            _downSince.Remove(node);
            _refusalLogged.Remove(node);
        }

        _known.UnionWith(clusterView.KnownNodes(NodeRoles.Storage));
        var removed = new List<string>();
        foreach (var node in _known.Except(active).Where(n => !state.State.Removed.Contains(n)).ToArray())
        {
            if (!_downSince.TryGetValue(node, out var since))
            {
                _downSince[node] = now;
                continue;
            }

            var down = Stopwatch.GetElapsedTime(since, now);
            if (removeAfter <= TimeSpan.Zero || down < removeAfter)
            {
                continue;
            }

            var result = await RemoveNodeAsync(node);
            if (result.Ok)
            {
                LogAutoRemoved(node, down.TotalSeconds);
                _downSince.Remove(node);
                removed.Add(node);
            }
            else if (_refusalLogged.Add(node))
            {
                // Asked again every few seconds until it can be done (another storage node joins) or the node returns.
                LogAutoRemoveRefused(node, down.TotalSeconds, result.Message);
            }
        }

        return [.. removed];
    }

    public Task<string[]> GetRemovedNodesAsync() => Task.FromResult(state.State.Removed.ToArray());

    public Task<bool> IsRemovedAsync(string node) => Task.FromResult(state.State.Removed.Contains(node));

    public async Task<RereplicationStatus> GetStatusAsync()
    {
        var (degraded, lost) = await CountDegradedAsync();
        var end = _endedTicks != 0 ? _endedTicks : Stopwatch.GetTimestamp();
        var elapsed = _startedTicks == 0 ? 0 : Stopwatch.GetElapsedTime(_startedTicks, end).TotalMilliseconds;
        return new RereplicationStatus(!_job.IsCompleted, [.. state.State.Removed], Volatile.Read(ref _groupsToCopy), Volatile.Read(ref _groupsCopied),
            Volatile.Read(ref _groupsFailed), Interlocked.Read(ref _bytesCopied), elapsed, degraded, lost, _lastError, _passes);
    }

    private void StartJob()
    {
        if (!_job.IsCompleted)
        {
            return;
        }

        _groupsToCopy = 0;
        _groupsCopied = 0;
        _groupsFailed = 0;
        _bytesCopied = 0;
        _lastError = "";
        _startedTicks = Stopwatch.GetTimestamp();
        _endedTicks = 0;
        _job = RunAsync();
    }

    private async Task RunAsync()
    {
        try
        {
            for (var pass = 0; pass < MaxPasses; pass++)
            {
                _passes++;
                var work = await PlanAsync();
                if (work.Count == 0 && _groupsFailed == 0)
                {
                    break;
                }

                _groupsFailed = 0;
                Interlocked.Add(ref _groupsToCopy, work.Count);
                await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentGroups, TaskScheduler = TaskScheduler.Current },
                    async (move, _) => await CopyGroupAsync(move));
                if (_groupsFailed == 0)
                {
                    break;
                }

                await Task.Delay(PassRetryDelay);
            }
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException)
        {
            _lastError = e.Message;
            LogFailed(e.Message);
        }
        finally
        {
            _endedTicks = Stopwatch.GetTimestamp();
            var elapsed = Stopwatch.GetElapsedTime(_startedTicks, _endedTicks);
            LogFinished(_groupsCopied, _groupsFailed, _bytesCopied, elapsed.TotalSeconds, _bytesCopied / 1e6 / Math.Max(elapsed.TotalSeconds, 1e-3));
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storage node {Node} removed from the cluster for good")]
    private partial void LogRemoved(string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storage node {Node} not active for {Seconds:F0} s: removed automatically, its data is re-replicated")]
    private partial void LogAutoRemoved(string node, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Storage node {Node} not active for {Seconds:F0} s, but cannot be removed yet: {Reason}")]
    private partial void LogAutoRemoveRefused(string node, double seconds, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Re-replication stopped: {Reason}")]
    private partial void LogFailed(string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Re-replication: {Copied} groups copied, {Failed} failed, {Bytes} bytes in {Seconds:F1} s ({MBps:F1} MB/s)")]
    private partial void LogFinished(int copied, int failed, long bytes, double seconds, double mbps);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Re-replication of volume {VolumeId} group {Group}: {Reason}")]
    private partial void LogGroupFailed(Guid volumeId, int group, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Volume {VolumeId} group {Group} had both replicas on removed nodes: its extents are lost")]
    private partial void LogLost(Guid volumeId, int group);
}
