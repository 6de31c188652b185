using System.Diagnostics;
using Converge.DataPath;
using Converge.Grains.Cluster;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Controller;

/// <summary>
/// Keeping the log moving: the open segment is sealed once it holds <see cref="SealAfterPayloadBytes"/> or has been
/// idle (no append sent or answered) for <see cref="IdleSealAfter"/> with data in it, so the storage nodes can destage
/// it; sealed segments destaged on both mirrors leave the catalogue and the dirty map (their blocks are read from the
/// extents from then on).
/// </summary>
public sealed partial class VolumeControllerGrain
{
    public const long SealAfterPayloadBytes = 32L * 1024 * 1024;

    private const int MaxDestageChecksPerTick = 16;
    private static readonly TimeSpan IdleSealAfter = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan MaintenancePeriod = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan PlacementRefreshPeriod = TimeSpan.FromSeconds(2);

    /// <summary>Sealed segments of this volume not yet known destaged on both mirrors.</summary>
    private readonly List<SegmentRecord> _sealedSegments = [];
    private long _segmentPayloadBytes;
    private int _segmentRecords;
    private long _lastAppendTicks;
    private IGrainTimer? _maintenanceTimer;

    /// <summary>
    /// Counts dirty entries dropped as destaged (here and by reads). An extent read caches what it got only if none was
    /// dropped while it was out: a write newer than that extent version could have completed, been pruned and been
    /// evicted from the cache meanwhile, and the older copy would then hide it.
    /// </summary>
    private long _dirtyDropped;
    private bool _maintaining;

    private void StartMaintenance()
    {
        _maintenanceTimer?.Dispose();
        _maintenanceTimer = this.RegisterGrainTimer(MaintainAsync, new GrainTimerCreationOptions(MaintenancePeriod, MaintenancePeriod) { Interleave = true, KeepAlive = true });
    }

    private void StopMaintenance()
    {
        _maintenanceTimer?.Dispose();
        _maintenanceTimer = null;
    }

    private void ResetSegmentFill()
    {
        _segmentPayloadBytes = 0;
        _segmentRecords = 0;
    }

    /// <summary>Counts an acknowledged record against its segment and seals the segment once it is full enough.</summary>
    private void NoteAppended(SegmentRecord segment, int payloadBytes)
    {
        if (segment != _segment)
        {
            // The record landed in a segment the writer has already moved away from.
            return;
        }

        _segmentPayloadBytes += payloadBytes;
        _segmentRecords++;
        _lastAppendTicks = Stopwatch.GetTimestamp();
        if (_segmentPayloadBytes >= SealAfterPayloadBytes)
        {
            SealAndMoveOn(segment, $"{_segmentPayloadBytes} bytes written");
        }
    }

    /// <summary>Seals the open segment and opens another (appends wait for the new one); once per segment.</summary>
    private void SealAndMoveOn(SegmentRecord segment, string reason)
    {
        if (_segment != segment || !_rotation.IsCompleted)
        {
            return;
        }

        LogSealing(_name, segment.SegmentId, reason);
        _rotation = RotateCoreAsync(segment, []);
    }

    private async Task MaintainAsync(CancellationToken cancellationToken)
    {
        if (_maintaining || _attachment is null || !MayServe())
        {
            return;
        }

        _maintaining = true;
        try
        {
            if (_segment is { } open && _segmentRecords > 0 && Stopwatch.GetElapsedTime(_lastAppendTicks) >= IdleSealAfter)
            {
                SealAndMoveOn(open, "idle");
            }

            if (Stopwatch.GetElapsedTime(_placementRefreshedTicks) >= PlacementRefreshPeriod)
            {
                await RefreshPlacementAsync();
            }

            await PruneDestagedAsync();
        }
        catch (Exception e) when (CallFailure.Is(e))
        {
            // Tried again at the next tick.
        }
        finally
        {
            _maintaining = false;
        }
    }

    /// <summary>
    /// Asks both mirrors of a few sealed segments whether they are destaged (a mirror on a removed node counts as
    /// destaged, never as one to wait for); those destaged on both leave the catalogue,
    /// and their dirty entries go, so the blocks are read from the extents (every replica applied them durably).
    /// </summary>
    private async Task PruneDestagedAsync()
    {
        if (_sealedSegments.Count == 0)
        {
            return;
        }

        var checking = _sealedSegments.Take(MaxDestageChecksPerTick).ToArray();
        var answers = await Task.WhenAll(checking.Select(async s =>
            await IsDestagedOnAsync(s.MirrorA, s.SegmentId) && await IsDestagedOnAsync(s.MirrorB, s.SegmentId)));
        var destaged = new HashSet<Guid>();
        for (var i = 0; i < checking.Length; i++)
        {
            if (answers[i])
            {
                destaged.Add(checking[i].SegmentId);
            }
        }

        // Look at other segments first next time.
        _sealedSegments.RemoveRange(0, checking.Length);
        _sealedSegments.AddRange(checking.Where(s => !destaged.Contains(s.SegmentId)));
        if (destaged.Count == 0)
        {
            return;
        }

        var removed = await Volume.RemoveSegmentsAsync(AttachedEpoch, [.. destaged]);
        if (!removed.Ok)
        {
            // Keep them: asked again later (a stale epoch stops this writer anyway).
            _sealedSegments.AddRange(checking.Where(s => destaged.Contains(s.SegmentId)));
            return;
        }

        var stale = new List<long>();
        foreach (var (block, entry) in _dirty)
        {
            if (destaged.Contains(entry.Segment.SegmentId))
            {
                stale.Add(block);
            }
        }

        foreach (var block in stale)
        {
            _dirty.TryRemove(block, out _);
        }

        _dirtyDropped += stale.Count;

        LogDestaged(_name, destaged.Count, stale.Count);
    }

    private async Task<bool> IsDestagedOnAsync(string node, Guid segmentId)
    {
        if (_removedNodes.Contains(node))
        {
            // A removed node's copy no longer counts: the other mirror destages the segment on its own.
            return true;
        }

        try
        {
            return await Mirror(node, segmentId).IsDestagedAsync();
        }
        catch (Exception e) when (CallFailure.Is(e))
        {
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Volume {Name}: sealing segment {SegmentId} ({Reason})")]
    private partial void LogSealing(string name, Guid segmentId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name}: {Segments} segments destaged on both mirrors; {Blocks} dirty blocks now read from extents")]
    private partial void LogDestaged(string name, int segments, int blocks);
}
