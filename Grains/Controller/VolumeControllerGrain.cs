using System.Collections.Concurrent;
using System.Diagnostics;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Grains.Cache;
using Converge.Grains.Cluster;
using Converge.Grains.Placement;
using Converge.Log;
using Converge.Volumes;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Converge.Grains.Controller;

/// <summary>
/// The host-side controller of one volume attached to this compute node (the write grain). Turn-based but reentrant:
/// many I/Os interleave at their awaits, never run in parallel, so its maps need no locks. Everything it knows is
/// rebuilt at attach from the segment catalogue and the mirrors, so losing the activation (or the node) loses no data.
/// </summary>
[NodePinnedPlacement, Reentrant]
public sealed partial class VolumeControllerGrain(
    LocalNode localNode,
    ClusterView clusterView,
    BlockCache cache,
    DataChannel.DataChannelClient dataChannel,
    VolumeReadViews readViews,
    ILogger<VolumeControllerGrain> logger) : Grain, IVolumeControllerGrain
{
    private const int MaxAppendAttempts = 4;
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    private readonly BlockLocks _locks = new();
    private readonly SemaphoreSlim _openClose = new(1, 1);
    /// <summary>Concurrent only for the NBD gateway's read fast path (<see cref="VolumeReadView"/>), which reads it from other threads.</summary>
    private readonly ConcurrentDictionary<long, DirtyEntry> _dirty = new();
    private string _name = "";
    private readonly OpenHandles _handles = new();
    private bool _opened;
    private int _inflight;
    private TaskCompletionSource? _drained;
    private Attachment? _attachment;
    private SegmentRecord? _segment;
    private ulong _sequence;
    private bool _lost;

    /// <summary>
    /// True once an open has finished recovery and opened a segment. I/O that arrives while an open is still recovering
    /// (the grain is reentrant) waits for it instead of writing with no segment, or into one the open is about to seal.
    /// </summary>
    private bool _ready;
    private long _leaseRenewedTicks;
    private IGrainTimer? _leaseTimer;
    private Task _rotation = Task.CompletedTask;
    private Converge.Storage.PlacementMap? _placement;
    private HashSet<string> _removedNodes = [];
    private VolumeReadView _readView = null!;
    private VolumeReadView.Publication? _publication;
    private long _placementRefreshedTicks;

    private Guid VolumeId => _attachment?.Volume.VolumeId ?? throw new DataPathException($"volume '{_name}' was detached from {localNode.Name}");

    /// <summary>
    /// The epoch this activation holds. A close that gave up waiting for in-flight I/O may have detached meanwhile:
    /// then the I/O fails cleanly instead of acting for an attachment that is gone.
    /// </summary>
    private ulong AttachedEpoch => _attachment?.Epoch ?? throw new DataPathException($"volume '{_name}' was detached from {localNode.Name}");

    private int BlockSizeBytes => _attachment!.Volume.BlockSizeBytes;

    private long SizeBytes => _attachment!.Volume.SizeBytes;

    private IVolumeGrain Volume => GrainFactory.GetGrain<IVolumeGrain>(_name);

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = this.GetPrimaryKeyString();
        _name = key[(key.IndexOf(NodeRoles.PinSeparator, StringComparison.Ordinal) + 1)..];
        _readView = readViews.Get(_name);
        return Task.CompletedTask;
    }

    public async Task<OpenReply> OpenAsync(Guid handleId, TimeSpan expiry)
    {
        if (handleId == Guid.Empty)
        {
            return new OpenReply(VolumeError.InvalidHandle, "an open must name its client handle (a non-empty id)", 0, 0, 0);
        }

        if (HandleExpiry.Check(expiry) is { } expiryError)
        {
            return new OpenReply(VolumeError.InvalidHandle, expiryError, 0, 0, 0);
        }

        // Opens and closes interleave with I/O but never with each other: a close that detaches must not race an open.
        await _openClose.WaitAsync();
        try
        {
            if (_handles.WasClosed(handleId))
            {
                return new OpenReply(VolumeError.InvalidHandle, $"handle {handleId} of '{_name}' was closed already; open with a new handle", 0, 0, 0);
            }

            var reply = await OpenCoreAsync();
            if (reply.Error == VolumeError.None)
            {
                _handles.TryOpen(handleId, expiry, Stopwatch.GetTimestamp());
            }

            return reply;
        }
        finally
        {
            _openClose.Release();
        }
    }

    public async Task CloseAsync(Guid handleId)
    {
        await _openClose.WaitAsync();
        try
        {
            if (_handles.Close(handleId))
            {
                await CloseCoreAsync();
            }
        }
        finally
        {
            _openClose.Release();
        }
    }

    public Task PingAsync() => Task.CompletedTask;

    public Task<HandleRenewal> KeepHandleAsync(Guid handleId, ulong heldEpoch, TimeSpan expiry)
    {
        if (handleId == Guid.Empty || expiry == HandleExpiry.Never || HandleExpiry.Check(expiry) is not null)
        {
            throw new ArgumentException(HandleExpiry.Check(expiry) ?? "a renewal names a non-empty handle id and a non-zero expiry");
        }

        var now = Stopwatch.GetTimestamp();
        if (_handles.WasClosed(handleId))
        {
            return Task.FromResult(new HandleRenewal(HandleState.Closed, 0));
        }

        if (_attachment is not { } attachment || _lost)
        {
            return Task.FromResult(new HandleRenewal(HandleState.NotHeld, 0));
        }

        if (_handles.Renew(handleId, expiry, now))
        {
            return Task.FromResult(new HandleRenewal(HandleState.Held, attachment.Epoch));
        }

        if (heldEpoch != 0 && heldEpoch == attachment.PreviousEpoch && attachment.PreviousHolder == localNode.Name)
        {
            // The handle held this node's previous attachment: its activation was lost with a silo, and I/O attached this
            // one (implicitly) before any hand-over. Held from now on, and it replaces the implicit hold its I/O made. A
            // handle of an older attachment (dropped by a client when the volume moved away, say) is not taken on.
            _handles.Adopt([new HandleHold(handleId, expiry)], now);
            LogHandleTakenOn(_name, handleId);
            return Task.FromResult(new HandleRenewal(HandleState.Held, attachment.Epoch));
        }

        return Task.FromResult(new HandleRenewal(HandleState.NotHeld, 0));
    }

    /// <summary>
    /// Releases the handles whose clients stopped renewing them; detaches, as a close would, when none is left. Runs on
    /// the lease timer; the detach runs beside it, so the lease keeps being renewed should an open come in meanwhile.
    /// </summary>
    private void ExpireHandles()
    {
        var expired = _handles.Expire(Stopwatch.GetTimestamp());
        if (expired.Count == 0)
        {
            return;
        }

        foreach (var id in expired)
        {
            LogHandleExpired(_name, localNode.Name, id);
        }

        if (_handles.Count == 0)
        {
            _ = CloseExpiredAsync();
        }
    }

    private async Task CloseExpiredAsync()
    {
        await _openClose.WaitAsync();
        try
        {
            await CloseCoreAsync();
        }
        catch (Exception e)
        {
            LogAttachFailed(_name, $"detach after the last handle expired failed: {e.Message}");
        }
        finally
        {
            _openClose.Release();
        }
    }

    private async Task<OpenReply> OpenCoreAsync()
    {
        _opened = true;
        if (_attachment is not null && !_lost && _ready)
        {
            return Reply();
        }

        var attach = await Volume.AttachAsync(localNode.Name, force: false);
        if (!attach.Ok)
        {
            return new OpenReply(attach.Error, attach.Message, 0, 0, 0);
        }

        var previousHolder = attach.Attachment!.PreviousHolder;
        RevokeReads();
        _readView.RevokeOlderThan(attach.Attachment.Epoch);
        _ready = false;
        _segment = null;
        _attachment = attach.Attachment;
        _lost = false;
        _leaseRenewedTicks = Stopwatch.GetTimestamp();
        _dirty.Clear();
        if (cache.HeldEpoch(VolumeId) != attach.Attachment.PreviousEpoch)
        {
            // This node did not hold the attachment just before this one (another node did, or an attach without a
            // controller, such as a forced move, came in between): nothing cached here can be proven current.
            cache.DropVolume(VolumeId);
        }

        cache.NoteHeld(VolumeId, attach.Attachment.Epoch);

        ResetPeer(previousHolder, attach.Attachment.PreviousEpoch);

        // Renew from the start: recovery may wait for a restarting mirror, and the lease must not lapse meanwhile.
        _leaseTimer?.Dispose();
        var period = TimeSpan.FromMilliseconds(_attachment.LeaseMs / 4.0);
        _leaseTimer = this.RegisterGrainTimer(RenewLeaseAsync, new GrainTimerCreationOptions(period, period) { Interleave = true, KeepAlive = true });
        try
        {
            _removedNodes = new HashSet<string>(await GrainFactory.GetGrain<Converge.Storage.IStorageRosterGrain>(0).GetRemovedNodesAsync(), StringComparer.Ordinal);
            _placementRefreshedTicks = Stopwatch.GetTimestamp();
            await RecoverSegmentsAsync();
            _placement = await GrainFactory.GetGrain<Converge.Storage.IVolumePlacementGrain>(VolumeId).GetOrAssignAsync(BlockSizeBytes);
            _segment = await NewSegmentAsync(exclude: []);
            ResetSegmentFill();
            _ready = true;
            PublishReads();
        }
        catch (Exception e) when (e is DataPathException or InvalidOperationException or ArgumentException || CallFailure.Is(e))
        {
            LogAttachFailed(_name, e.Message);
            _leaseTimer.Dispose();
            _leaseTimer = null;
            var epoch = _attachment.Epoch;
            _attachment = null;
            try
            {
                await Volume.DetachAsync(localNode.Name, epoch);
            }
            catch (Exception detach) when (CallFailure.Is(detach))
            {
                // The lease lapses on its own.
            }

            return new OpenReply(VolumeError.InvalidNode, $"cannot attach '{_name}' on {localNode.Name}: {e.Message}", 0, 0, 0);
        }

        StartMaintenance();
        LogAttached(_name, localNode.Name, _attachment.Epoch, _dirty.Count);
        return Reply();
    }

    /// <summary>Detaches once the last hold was released (the caller released one), after in-flight I/O drains.</summary>
    private async Task CloseCoreAsync()
    {
        if (_handles.Count > 0)
        {
            return;
        }

        if (_inflight > 0)
        {
            _drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await Task.WhenAny(_drained.Task, Task.Delay(DrainTimeout));
        }

        if (_handles.Count > 0 || _attachment is null)
        {
            return;
        }

        RevokeReads();
        _leaseTimer?.Dispose();
        _leaseTimer = null;
        StopMaintenance();
        if (!_lost)
        {
            try
            {
                if (_segment is { } open)
                {
                    await SealSegmentAsync(open);
                }

                await Volume.DetachAsync(localNode.Name, _attachment.Epoch);
                LogDetached(_name, localNode.Name, _attachment.Epoch);
            }
            catch (Exception e) when (e is DataPathException || CallFailure.Is(e))
            {
                // The next holder fences and seals whatever is left open; without a detach the lease lapses on its own.
                LogAttachFailed(_name, $"graceful detach incomplete: {e.Message}");
            }
        }

        _attachment = null;
        _segment = null;
        _ready = false;
    }

    private OpenReply Reply() => new(VolumeError.None, "", SizeBytes, BlockSizeBytes, _attachment!.Epoch);

    /// <summary>
    /// An I/O that reaches an activation never opened here (the grain directory lost its entry when a silo died and a
    /// fresh activation took the calls) attaches again on this node first: the epoch bump fences any older activation,
    /// and the client's connection keeps working. Once opened, only <see cref="MayServe"/> decides.
    /// </summary>
    private async ValueTask<bool> EnsureServingAsync()
    {
        if ((_attachment is not null && !_ready) || (_opened && _attachment is null))
        {
            // An open is attaching or recovering (fencing, rebuilding the dirty map), or has just failed: wait for it to
            // finish, then decide. Without the wait, I/O arriving together at an unattached controller had the first
            // request attach and the others answered NotAttached while it did.
            await _openClose.WaitAsync();
            _openClose.Release();
        }

        if (_attachment is not null || _opened)
        {
            return MayServe();
        }

        LogImplicitAttach(_name, localNode.Name);
        await _openClose.WaitAsync();
        try
        {
            if (!_opened)
            {
                var reply = await OpenCoreAsync();
                if (reply.Error == VolumeError.None)
                {
                    _handles.OpenImplicitly();
                }
            }
        }
        finally
        {
            _openClose.Release();
        }

        return MayServe();
    }

    /// <summary>I/O is allowed only while this node provably holds the volume: attached, not fenced, lease fresh.</summary>
    private bool MayServe()
    {
        if (_attachment is null || _lost || !_ready)
        {
            return false;
        }

        // Stop a margin before the volume grain would let another node take over.
        if (Stopwatch.GetElapsedTime(_leaseRenewedTicks).TotalMilliseconds > _attachment.LeaseMs * LeaseServeFraction)
        {
            MarkLost();
            LogLeaseLost(_name, localNode.Name);
            return false;
        }

        return true;
    }

    private async Task RenewLeaseAsync(CancellationToken cancellationToken)
    {
        if (_attachment is null || _lost)
        {
            return;
        }

        ExpireHandles();

        var sent = Stopwatch.GetTimestamp();
        var epoch = _attachment.Epoch;
        try
        {
            var renewed = await Volume.RenewLeaseAsync(localNode.Name, epoch);
            if (_attachment?.Epoch != epoch)
            {
                // Asked for an attachment that was replaced meanwhile (a re-attach here): its answer says nothing of this one.
                return;
            }

            if (renewed.Ok)
            {
                _leaseRenewedTicks = sent;
                if (_publication is { } publication)
                {
                    Volatile.Write(ref publication.ServeUntilTicks, ServeUntilTicks());
                }
            }
            else if (renewed.Error is VolumeError.StaleEpoch or VolumeError.NotFound)
            {
                MarkLost();
                LogLeaseLost(_name, localNode.Name);
            }
        }
        catch (Exception e) when (CallFailure.Is(e))
        {
            // Try again at the next tick; MayServe stops I/O if renewals keep failing.
        }
    }

    /// <summary>I/O stops this far into the lease (and the read fast path with it), a margin before another node may take over.</summary>
    private const double LeaseServeFraction = 0.8;

    /// <summary>Stops all I/O of this activation: fenced, lease lost, or its attachment gone from the catalogue.</summary>
    private void MarkLost()
    {
        _lost = true;
        RevokeReads();
    }

    /// <summary>Lets the NBD gateway answer cache hits itself (see <see cref="VolumeReadView"/>); once an attach is ready.</summary>
    private void PublishReads()
    {
        if (_lost)
        {
            // A renewal answered StaleEpoch while the attach finished: I/O stops, and so does the fast path.
            return;
        }

        _publication = new VolumeReadView.Publication(this, _attachment!.Epoch, VolumeId, BlockSizeBytes, SizeBytes, _dirty, ServeUntilTicks());
        _readView.Publish(_publication);
    }

    /// <summary>Sends every read to this controller again; before anything that could leave a cached copy unprovable.</summary>
    private void RevokeReads()
    {
        _publication = null;
        _readView.Revoke(this);
    }

    private long ServeUntilTicks() => _leaseRenewedTicks + (long)(_attachment!.LeaseMs * LeaseServeFraction * Stopwatch.Frequency / 1000);

    private void BeginIo() => _inflight++;

    private void EndIo()
    {
        if (--_inflight == 0)
        {
            _drained?.TrySetResult();
        }
    }

    private ILogSegmentGrain Mirror(string node, Guid segmentId) =>
        GrainFactory.GetGrain<ILogSegmentGrain>(NodeRoles.PinnedKey(node, segmentId.ToString("N")));

    /// <summary>The newest logged version of one block not yet known destaged.</summary>
    /// <param name="Recovered">
    /// Rebuilt at attach rather than written by this activation: a newer version may have been destaged from a segment
    /// already gone, so reads check the extents first.
    /// </param>
    internal readonly record struct DirtyEntry(Lsn Lsn, SegmentRecord Segment, bool Zero, bool Recovered = false);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} attached on {Node} at epoch {Epoch}; dirty map rebuilt with {Blocks} blocks")]
    private partial void LogAttached(string name, string node, ulong epoch, int blocks);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name} on {Node}: client handle {HandleId} expired unrenewed (its client stopped); released as if closed")]
    private partial void LogHandleExpired(string name, string node, Guid handleId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name}: client handle {HandleId}, opened at an earlier activation, taken on at its renewal")]
    private partial void LogHandleTakenOn(string name, Guid handleId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name}: I/O reached an activation on {Node} that was never opened; attaching again")]
    private partial void LogImplicitAttach(string name, string node);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} detached from {Node} at epoch {Epoch}")]
    private partial void LogDetached(string name, string node, ulong epoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name} could not attach: {Reason}")]
    private partial void LogAttachFailed(string name, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name} on {Node}: lease lost or fenced; all I/O stops")]
    private partial void LogLeaseLost(string name, string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name}: segment {SegmentId} on {MirrorA}+{MirrorB} failed ({Reason}); moving to a new pair")]
    private partial void LogRotate(string name, Guid segmentId, string mirrorA, string mirrorB, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name}: the cluster's mirror choice did not answer ({Reason}); choosing alone")]
    private partial void LogChoosingAlone(string name, string reason);
}
