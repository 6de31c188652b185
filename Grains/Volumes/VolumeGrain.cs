using System.Diagnostics;
using Converge.Volumes;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Volumes;

/// <summary>
/// The control-plane record of one volume. Every change is persisted with an ETag check before it is reported,
/// so two racing attaches cannot both win. Leases are kept on this activation's monotonic clock: after a
/// reactivation every lease counts as just renewed, so a takeover waits at most one lease period.
/// </summary>
[Converge.Grains.Placement.ControlPlanePlacement]
public sealed partial class VolumeGrain(
    [PersistentState("volume", MetadataStorage.Name)] IPersistentState<VolumeState> state,
    ILogger<VolumeGrain> logger) : Grain, IVolumeGrain
{
    /// <summary>How long an attachment holds without renewal. Holders renew at a third of it.</summary>
    public const int LeaseMs = 10_000;

    private const int MaxFormerHolders = 4;

    private long _leaseRenewedTicks = Stopwatch.GetTimestamp();

    private string Name => this.GetPrimaryKeyString();

    public async Task<VolumeResult> CreateAsync(long sizeBytes, int blockSizeBytes)
    {
        if (VolumeRules.CheckName(Name) is { } nameError)
        {
            return VolumeResult.Fail(VolumeError.InvalidName, nameError);
        }

        if (VolumeRules.CheckBlockSize(blockSizeBytes) is { } blockError)
        {
            return VolumeResult.Fail(VolumeError.InvalidBlockSize, blockError);
        }

        if (VolumeRules.CheckSize(sizeBytes, blockSizeBytes) is { } sizeError)
        {
            return VolumeResult.Fail(VolumeError.InvalidSize, sizeError);
        }

        if (state.State.Exists)
        {
            return VolumeResult.Fail(VolumeError.AlreadyExists, $"volume '{Name}' already exists");
        }

        state.State = new VolumeState
        {
            Exists = true,
            VolumeId = Guid.NewGuid(),
            SizeBytes = sizeBytes,
            BlockSizeBytes = blockSizeBytes,
            Epoch = 0,
            CreatedUtc = DateTime.UtcNow,
        };
        await state.WriteStateAsync();
        LogCreated(Name, state.State.VolumeId, sizeBytes);
        return VolumeResult.Success(Snapshot());
    }

    public Task<VolumeResult> GetAsync() =>
        Task.FromResult(state.State.Exists ? VolumeResult.Success(Snapshot()) : NotFound());

    public async Task<VolumeResult> ResizeAsync(long newSizeBytes)
    {
        if (!state.State.Exists)
        {
            return NotFound();
        }

        if (VolumeRules.CheckSize(newSizeBytes, state.State.BlockSizeBytes) is { } sizeError)
        {
            return VolumeResult.Fail(VolumeError.InvalidSize, sizeError);
        }

        if (newSizeBytes < state.State.SizeBytes)
        {
            return VolumeResult.Fail(
                VolumeError.ShrinkRefused,
                $"volume '{Name}' is {state.State.SizeBytes} bytes; shrinking to {newSizeBytes} would drop data and is refused");
        }

        state.State.SizeBytes = newSizeBytes;
        await state.WriteStateAsync();
        return VolumeResult.Success(Snapshot());
    }

    public async Task<VolumeResult> DeleteAsync(bool force)
    {
        if (!state.State.Exists)
        {
            return NotFound();
        }

        if (state.State.AttachedNode is { } holder && !force)
        {
            return VolumeResult.Fail(VolumeError.Attached, $"volume '{Name}' is attached to {holder}; detach it first or use --force");
        }

        var removed = Snapshot();

        // Placement first: once it says deleted, destage drops the volume's segments and the extents go.
        await GrainFactory.GetGrain<Converge.Storage.IVolumePlacementGrain>(removed.VolumeId).MarkDeletedAsync();
        await state.ClearStateAsync();
        state.State = new VolumeState();
        LogDeleted(Name, removed.VolumeId);
        DeactivateOnIdle();
        return VolumeResult.Success(removed);
    }

    public async Task<AttachResult> AttachAsync(string node, bool force)
    {
        if (!state.State.Exists)
        {
            return new AttachResult(VolumeError.NotFound, $"no volume named '{Name}'", null);
        }

        if (string.IsNullOrWhiteSpace(node))
        {
            return new AttachResult(VolumeError.InvalidNode, "a node name is required to attach", null);
        }

        var holder = state.State.AttachedNode;
        if (holder is not null && holder != node && !force && !LeaseExpired())
        {
            return new AttachResult(
                VolumeError.AttachedElsewhere,
                $"volume '{Name}' is attached to {holder} (epoch {state.State.Epoch}); it can move once {holder} detaches or its lease expires",
                null);
        }

        // The node that held the volume last, attached now or detached since: its cache, not this node's, is current.
        var previous = holder ?? state.State.LastHolder;
        if (previous is not null && previous != node)
        {
            state.State.FormerHolders.Remove(previous);
            state.State.FormerHolders.Insert(0, previous);
            if (state.State.FormerHolders.Count > MaxFormerHolders)
            {
                state.State.FormerHolders.RemoveRange(MaxFormerHolders, state.State.FormerHolders.Count - MaxFormerHolders);
            }
        }

        var previousEpoch = state.State.Epoch;
        state.State.Epoch++;
        state.State.AttachedNode = node;
        state.State.LastHolder = node;
        await state.WriteStateAsync();
        _leaseRenewedTicks = Stopwatch.GetTimestamp();
        LogAttached(Name, node, state.State.Epoch, previous);
        return new AttachResult(VolumeError.None, "", new Attachment(Snapshot(), node, state.State.Epoch, LeaseMs, previous, previousEpoch));
    }

    public Task<AttachResult> RenewLeaseAsync(string node, ulong epoch)
    {
        if (!state.State.Exists)
        {
            return Task.FromResult(new AttachResult(VolumeError.NotFound, $"no volume named '{Name}'", null));
        }

        if (state.State.AttachedNode != node || state.State.Epoch != epoch)
        {
            return Task.FromResult(new AttachResult(
                VolumeError.StaleEpoch,
                $"volume '{Name}' is now attached to {state.State.AttachedNode ?? "nothing"} at epoch {state.State.Epoch}",
                null));
        }

        _leaseRenewedTicks = Stopwatch.GetTimestamp();
        return Task.FromResult(new AttachResult(VolumeError.None, "", new Attachment(Snapshot(), node, epoch, LeaseMs)));
    }

    public async Task<VolumeResult> DetachAsync(string node, ulong epoch)
    {
        if (!state.State.Exists)
        {
            return NotFound();
        }

        if (state.State.AttachedNode != node || (epoch != 0 && state.State.Epoch != epoch))
        {
            return VolumeResult.Fail(
                VolumeError.StaleEpoch,
                $"volume '{Name}' is not attached to {node} at epoch {epoch} (holder {state.State.AttachedNode ?? "none"}, epoch {state.State.Epoch})");
        }

        state.State.AttachedNode = null;
        await state.WriteStateAsync();
        LogDetached(Name, node, state.State.Epoch);
        return VolumeResult.Success(Snapshot());
    }

    public Task<IReadOnlyList<Converge.DataPath.SegmentRecord>> GetSegmentsAsync() =>
        Task.FromResult<IReadOnlyList<Converge.DataPath.SegmentRecord>>(state.State.Segments.ToArray());

    public async Task<VolumeResult> PutSegmentAsync(ulong epoch, Converge.DataPath.SegmentRecord segment)
    {
        if (!state.State.Exists)
        {
            return NotFound();
        }

        if (epoch != state.State.Epoch || segment.Epoch > epoch)
        {
            return VolumeResult.Fail(VolumeError.StaleEpoch, $"volume '{Name}' is at epoch {state.State.Epoch}, not {epoch}");
        }

        var index = state.State.Segments.FindIndex(s => s.SegmentId == segment.SegmentId);
        if (index >= 0)
        {
            state.State.Segments[index] = segment;
        }
        else
        {
            state.State.Segments.Add(segment);
        }

        await state.WriteStateAsync();
        return VolumeResult.Success(Snapshot());
    }

    public async Task<VolumeResult> RemoveSegmentsAsync(ulong epoch, Guid[] segmentIds)
    {
        if (!state.State.Exists)
        {
            return NotFound();
        }

        if (epoch != state.State.Epoch)
        {
            return VolumeResult.Fail(VolumeError.StaleEpoch, $"volume '{Name}' is at epoch {state.State.Epoch}, not {epoch}");
        }

        if (state.State.Segments.RemoveAll(s => segmentIds.Contains(s.SegmentId)) > 0)
        {
            await state.WriteStateAsync();
        }

        return VolumeResult.Success(Snapshot());
    }

    private bool LeaseExpired() => Stopwatch.GetElapsedTime(_leaseRenewedTicks).TotalMilliseconds > LeaseMs;

    private VolumeResult NotFound() => VolumeResult.Fail(VolumeError.NotFound, $"no volume named '{Name}'");

    private VolumeInfo Snapshot() => new(
        state.State.VolumeId,
        Name,
        state.State.SizeBytes,
        state.State.BlockSizeBytes,
        state.State.Epoch,
        state.State.AttachedNode,
        state.State.CreatedUtc,
        state.State.FormerHolders.ToArray());

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} created: id {VolumeId}, {SizeBytes} bytes")]
    private partial void LogCreated(string name, Guid volumeId, long sizeBytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} deleted (id {VolumeId})")]
    private partial void LogDeleted(string name, Guid volumeId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} attached to {Node} at epoch {Epoch} (previous holder {Previous})")]
    private partial void LogAttached(string name, string node, ulong epoch, string? previous);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} detached from {Node} at epoch {Epoch}")]
    private partial void LogDetached(string name, string node, ulong epoch);
}
