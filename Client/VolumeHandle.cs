using System.Diagnostics;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Grains.Placement;
using Converge.Volumes;

namespace Converge.Client;

/// <summary>
/// Block I/O on one volume for .NET applications, tests and benchmarks: the volume is attached to the chosen compute
/// node while the handle is open. Every completed write is acknowledged (committed on two storage mirrors).
/// Dispose the handle to release the attachment. While open, the handle renews itself in the background; should this
/// process die without disposing it, the controller releases it once its expiry passes unrenewed
/// (<see cref="HandleExpiry.Default"/>, 30 s), so the volume does not stay attached for a client that is gone.
/// An I/O call that got no answer throws <see cref="TimeoutException"/> or an <c>OrleansException</c> (its outcome is
/// unknown), or <see cref="VolumeIoException"/> <c>NodeLost</c> when its compute node left the cluster (then so does
/// every later call of the handle).
/// </summary>
public sealed class VolumeHandle : IAsyncDisposable
{
    /// <summary>How often an open is sent again when the runtime lost the call or its reply (a gateway silo died).</summary>
    private const int OpenAttempts = 3;
    private static readonly TimeSpan OpenRetryDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan ReleaseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How often calls in flight are checked for progress, and how long a ping may take (<see cref="WatchNodeAsync"/>).</summary>
    private static readonly TimeSpan NodeWatchPeriod = TimeSpan.FromSeconds(1);

    private readonly IClusterClient _cluster;
    private readonly IVolumeControllerGrain _controller;
    private readonly Guid _handleId;
    private readonly TimeSpan _expiry;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _nodeLost = new();
    private readonly Task _renewals;
    private readonly Task _watch;
    private int _closed;
    private int _expired;
    private int _inflight;
    private long _answered;

    private VolumeHandle(IClusterClient cluster, IVolumeControllerGrain controller, Guid handleId, TimeSpan expiry, string name, string node, OpenReply reply)
    {
        _cluster = cluster;
        _controller = controller;
        _handleId = handleId;
        _expiry = expiry;
        Name = name;
        Node = node;
        SizeBytes = reply.SizeBytes;
        BlockSizeBytes = reply.BlockSizeBytes;
        Epoch = reply.Epoch;
        _renewals = expiry == HandleExpiry.Never ? Task.CompletedTask : Task.Run(RenewUntilClosedAsync);
        _watch = Task.Run(WatchNodeAsync);
    }

    public string Name { get; }

    public string Node { get; }

    public long SizeBytes { get; }

    public int BlockSizeBytes { get; }

    public ulong Epoch { get; }

    /// <summary>
    /// True once this handle holds the volume no more: the controller answered it closed or expired, or no renewal was
    /// answered held for a whole expiry (this client was cut off that long, or its compute node died). The volume may
    /// have been detached or moved; renewals have stopped. I/O may still be answered while the volume stays attached to
    /// the node for other handles; open a new handle to hold it again.
    /// </summary>
    public bool Expired => Volatile.Read(ref _expired) == 1;

    /// <summary>
    /// Attaches <paramref name="volumeName"/> on <paramref name="computeNode"/>, with the default expiry
    /// (<see cref="HandleExpiry.Default"/>); see the overload with an expiry.
    /// </summary>
    public static Task<VolumeHandle> OpenAsync(IClusterClient cluster, string volumeName, string computeNode, CancellationToken cancellationToken = default) =>
        OpenAsync(cluster, volumeName, computeNode, HandleExpiry.Default, cancellationToken);

    /// <summary>
    /// Attaches <paramref name="volumeName"/> on <paramref name="computeNode"/>; refusals are thrown as
    /// <see cref="VolumeIoException"/>. The handle has its own id: an open whose reply the runtime lost is sent again
    /// (bounded) under that id and holds the volume once. An open that fails or is cancelled after it may have reached
    /// the controller is closed again, best effort, so that it does not keep the volume attached. The handle renews
    /// itself every fifth of <paramref name="handleExpiry"/>; the controller releases it when it goes unrenewed that long
    /// (this process died). <see cref="HandleExpiry.Never"/> holds it until disposed.
    /// </summary>
    public static async Task<VolumeHandle> OpenAsync(IClusterClient cluster, string volumeName, string computeNode, TimeSpan handleExpiry, CancellationToken cancellationToken = default)
    {
        if (VolumeRules.CheckName(volumeName) is { } nameError)
        {
            throw new ArgumentException(nameError, nameof(volumeName));
        }

        if (HandleExpiry.Check(handleExpiry) is { } expiryError)
        {
            throw new ArgumentOutOfRangeException(nameof(handleExpiry), handleExpiry, expiryError);
        }

        if (!computeNode.StartsWith(NodeRoles.Compute + "-", StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{computeNode}' is not a compute node (compute-N)", nameof(computeNode));
        }

        var controller = cluster.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey(computeNode, volumeName));
        var handleId = Guid.NewGuid();
        OpenReply reply;
        try
        {
            reply = await OpenWithRetriesAsync(controller, handleId, handleExpiry, cancellationToken);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or OperationCanceledException)
        {
            await ReleaseQuietlyAsync(controller, handleId);
            throw;
        }

        if (reply.Error != VolumeError.None)
        {
            throw new VolumeIoException(reply.Error.ToString(), reply.Message);
        }

        return new VolumeHandle(cluster, controller, handleId, handleExpiry, volumeName, computeNode, reply);
    }

    private static async Task<OpenReply> OpenWithRetriesAsync(IVolumeControllerGrain controller, Guid handleId, TimeSpan expiry, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await controller.OpenAsync(handleId, expiry).WaitAsync(cancellationToken);
            }
            catch (OrleansException) when (attempt < OpenAttempts)
            {
                // The silo the call went through died, or the controller's activation was lost: the open may or may
                // not have happened, and sending it again under the same id is safe either way.
                await Task.Delay(OpenRetryDelay, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Closes a handle whose open failed or was abandoned. If this cannot reach the controller either, the hold stays
    /// until the controller's activation goes (the volume stays attached to that node meanwhile).
    /// </summary>
    private static async Task ReleaseQuietlyAsync(IVolumeControllerGrain controller, Guid handleId)
    {
        try
        {
            await controller.CloseAsync(handleId).WaitAsync(ReleaseTimeout);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            // Nothing more to do from here.
        }
    }

    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offsetBytes"/>; completes when both mirrors committed it. A write
    /// that failed or timed out may have landed, but never after a write issued once it had failed (<see cref="WriteDeadline"/>).
    /// </summary>
    public Task<IoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> data) =>
        Guard(_controller.WriteAcknowledgedAsync(offsetBytes, data, WriteDeadline.FromNow()));

    /// <summary>Makes a range read as zeros (logged, mirrored and acknowledged like a write).</summary>
    public Task<IoStatus> ZeroAsync(long offsetBytes, long lengthBytes) =>
        Guard(_controller.ZeroAcknowledgedAsync(offsetBytes, lengthBytes, WriteDeadline.FromNow()));

    public Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes) => Guard(_controller.ReadAsync(offsetBytes, lengthBytes));

    /// <summary>
    /// True once this handle's compute node was found gone from the cluster with calls in flight: every call of the handle
    /// then fails with <see cref="VolumeIoException"/> (<c>NodeLost</c>); open a new handle, on another compute node or on
    /// this one once it is back.
    /// </summary>
    public bool NodeLost => _nodeLost.IsCancellationRequested;

    /// <summary>
    /// An I/O call, failed early if the compute node leaves the cluster before it is answered. Without this, calls in
    /// flight to a node that died wait out their 10 s timeout; with it, about a second or two after the node is declared
    /// dead (<see cref="WatchNodeAsync"/>). Failing them early is safe for writes: the node is gone, so the controller
    /// that had them can place none of them after a later write through a new handle, whose attach fences it.
    /// </summary>
    private Task<T> Guard<T>(Task<T> call) => call.IsCompletedSuccessfully && !NodeLost ? call : GuardAsync(call);

    private async Task<T> GuardAsync<T>(Task<T> call)
    {
        Interlocked.Increment(ref _inflight);
        try
        {
            return await call.WaitAsync(_nodeLost.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException expired) when (!_nodeLost.IsCancellationRequested)
        {
            // The runtime expired the call's message before it could be placed: its directory lookup outlived the call's
            // timeout (the silo owning that part of the directory died or was cut off and is not yet declared dead). That
            // is no answer, like a timeout, and is reported as one: nobody cancelled anything.
            throw new TimeoutException($"no answer from {Node} for '{Name}': {expired.Message}", expired);
        }
        catch (OperationCanceledException) when (_nodeLost.IsCancellationRequested)
        {
            // Observe the abandoned call's own failure (its timeout, later) so that it is not reported unobserved.
            _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            throw new VolumeIoException(
                "NodeLost",
                $"compute node {Node} left the cluster with this call of '{Name}' in flight; its outcome is unknown (a write may have landed, but none can land after a write through a new handle)");
        }
        catch (NodeUnavailableException unavailable)
        {
            // Placement refused this call: the node is not an active member. The calls still in flight to it fail now too.
            await _nodeLost.CancelAsync().ConfigureAwait(false);
            throw new VolumeIoException("NodeLost", $"compute node {Node} is not in the cluster; open '{Name}' on another node ({unavailable.Message})");
        }
        finally
        {
            Interlocked.Decrement(ref _inflight);
            Interlocked.Increment(ref _answered);
        }
    }

    /// <summary>
    /// Once a second: when calls are in flight and none was answered since the last look, pings the controller. When the
    /// ping fails, the node is taken for gone only on the cluster's word: placement refused it as not an active member,
    /// or membership lists no active silo of that name. Then the calls in flight fail (<see cref="NodeLost"/>). A node
    /// that is only slow, hung or out of reach of one gateway is still a member, and the calls keep waiting for their
    /// own answers: its controller may still place them.
    /// </summary>
    private async Task WatchNodeAsync()
    {
        using var timer = new PeriodicTimer(NodeWatchPeriod);
        var answeredBefore = -1L;
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                if (Expired)
                {
                    // Holds nothing any more: a handle dropped undisposed (its volume moved away) stops watching too.
                    return;
                }

                var answered = Interlocked.Read(ref _answered);
                if (Volatile.Read(ref _inflight) == 0 || answered != answeredBefore)
                {
                    answeredBefore = answered;
                    continue;
                }

                try
                {
                    await _controller.PingAsync().WaitAsync(NodeWatchPeriod, _stop.Token);
                }
                catch (Exception e) when (IsCallFailure(e))
                {
                    if (e is NodeUnavailableException || !await NodeIsActiveAsync())
                    {
                        await _nodeLost.CancelAsync();
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (ObjectDisposedException)
        {
            // The cluster client was disposed: nothing left to watch through.
        }
    }

    /// <summary>False only when membership, asked through the gateway, lists no active silo named <see cref="Node"/>.</summary>
    private async Task<bool> NodeIsActiveAsync()
    {
        try
        {
            var hosts = await _cluster.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: true).WaitAsync(NodeWatchPeriod, _stop.Token);
            return Array.Exists(hosts, h => h.SiloName == Node && h.Status == SiloStatus.Active);
        }
        catch (Exception e) when (IsCallFailure(e))
        {
            return true;
        }
    }

    /// <summary>A call that failed for the cluster's reasons, not because this handle was disposed.</summary>
    private bool IsCallFailure(Exception e) => CallFailure.Is(e) && !(e is OperationCanceledException && _stop.IsCancellationRequested);

    /// <summary>
    /// Renews the handle until it is disposed, or until it holds nothing: the controller answered it closed or expired, or
    /// no renewal was answered held for a whole expiry (the controller, if it is still there, has let it go). A renewal
    /// that fails (the gateway died, the compute node restarts) is sent again at the next period.
    /// </summary>
    private async Task RenewUntilClosedAsync()
    {
        var period = HandleExpiry.RenewPeriod(_expiry);
        using var timer = new PeriodicTimer(period);
        var heldEpoch = Epoch;
        var heldSince = Stopwatch.GetTimestamp();
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                if (Stopwatch.GetElapsedTime(heldSince) > _expiry)
                {
                    Volatile.Write(ref _expired, 1);
                    return;
                }

                try
                {
                    var sent = Stopwatch.GetTimestamp();
                    var renewal = await _controller.KeepHandleAsync(_handleId, heldEpoch, _expiry).WaitAsync(period, _stop.Token);
                    if (renewal.State == HandleState.Held)
                    {
                        heldSince = sent;
                        heldEpoch = renewal.Epoch;
                    }
                    else if (renewal.State == HandleState.Closed)
                    {
                        Volatile.Write(ref _expired, 1);
                        return;
                    }
                }
                catch (Exception e) when (IsCallFailure(e))
                {
                    // Sent again at the next tick.
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (ObjectDisposedException)
        {
            // The cluster client was disposed before this handle: nothing left to renew through, so the handle expires.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            await _stop.CancelAsync();
            await _renewals;
            await _watch;
            _stop.Dispose();
            if (!NodeLost)
            {
                // A node that left the cluster took the controller, and the hold, with it. A close sent anyway could reach
                // a new activation after the node's restart, which knows nothing of this handle.
                await _controller.CloseAsync(_handleId);
            }
        }
    }
}

/// <summary>A volume could not be opened for I/O (unknown, attached elsewhere, no storage).</summary>
public sealed class VolumeIoException(string error, string message) : Exception(message)
{
    public string Error { get; } = error;
}
