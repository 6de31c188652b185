using Converge.Grains.Cluster;
using Converge.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Rereplication;

/// <summary>
/// Whether this storage node was removed from the cluster for good. Once fenced it stays fenced until the process ends:
/// its extent replicas and log segments refuse every call, so copies left behind on a node that comes back are never
/// served again, and its destage stops (the placement maps no longer name it).
/// </summary>
public sealed class NodeFence
{
    private volatile bool _removed;

    public bool IsRemoved => _removed;

    public void Fence() => _removed = true;

    public const string RemovedMessage = "this storage node was removed from the cluster; its copies are no longer served";
}

/// <summary>
/// On start, asks the control plane whether this node was removed (the first contact after a restart), retrying while
/// the control plane is not reachable yet, for a bounded time. A node removed while running is fenced on contact by
/// <see cref="IStorageRosterGrain.RemoveNodeAsync"/> instead.
/// </summary>
public sealed partial class NodeFenceService(NodeFence fence, LocalNode localNode, IGrainFactory grains, ILogger<NodeFenceService> logger) : BackgroundService
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromMinutes(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!stoppingToken.IsCancellationRequested && clock.Elapsed < GiveUpAfter)
        {
            try
            {
                if (await grains.GetGrain<IStorageRosterGrain>(0).IsRemovedAsync(localNode.Name))
                {
                    fence.Fence();
                    LogFenced(localNode.Name);
                }

                return;
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or InvalidOperationException)
            {
                // The silo or the control plane is not serving yet.
            }

            try
            {
                await Task.Delay(RetryDelay, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        if (!stoppingToken.IsCancellationRequested)
        {
            LogUnknown(localNode.Name, GiveUpAfter.TotalSeconds);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Node} was removed from the cluster: its extent replicas and log segments are fenced")]
    private partial void LogFenced(string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Node}: the control plane did not say within {Seconds} s whether this node was removed")]
    private partial void LogUnknown(string node, double seconds);
}
