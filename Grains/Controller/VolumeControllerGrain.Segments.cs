using System.Diagnostics;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Grains.Cluster;
using Converge.Log;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>How long attach keeps asking a segment's mirrors for its entries while both are unreachable.</summary>
    private static readonly TimeSpan EntriesPatience = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan EntriesRetryDelay = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Takeover before serving: fence every unsealed segment of older epochs on at least one mirror (an ack needs both,
    /// so one fenced mirror stops the old writer), seal them, then rebuild the dirty map from every catalogued segment.
    /// </summary>
    private async Task RecoverSegmentsAsync()
    {
        var epoch = AttachedEpoch;
        var segments = await Volume.GetSegmentsAsync();
        foreach (var segment in segments.Where(s => !s.Sealed))
        {
            var fenced = 0;
            foreach (var node in new[] { segment.MirrorA, segment.MirrorB })
            {
                if (await TryMirrorAsync(() => Mirror(node, segment.SegmentId).FenceAsync(VolumeId, epoch)) == MirrorStatus.Ok)
                {
                    fenced++;
                }
            }

            if (fenced == 0)
            {
                throw new DataPathException($"segment {segment.SegmentId} cannot be fenced: neither {segment.MirrorA} nor {segment.MirrorB} answers");
            }

            await SealSegmentAsync(segment);
        }

        _sealedSegments.Clear();
        var gone = new List<Guid>();
        foreach (var segment in segments)
        {
            if (await CollectEntriesAsync(segment) == 2)
            {
                // Destaged on both mirrors (or never written): nothing to read from it, and attach need not scan it again.
                gone.Add(segment.SegmentId);
            }
            else
            {
                _sealedSegments.Add(segment with { Sealed = true });
            }
        }

        if (gone.Count > 0)
        {
            await Volume.RemoveSegmentsAsync(epoch, [.. gone]);
        }
    }

    /// <summary>
    /// Merges one segment's entries into the dirty map and returns how many mirrors answered Gone (destaged there).
    /// Every acknowledged record is on both mirrors, so one mirror's entries, or one mirror's Gone (its records are
    /// durable in the extents), is enough. With no answer from either, the blocks this segment wrote are unknown: reading
    /// them from the extents could return older data, so the attach waits (bounded) and then fails rather than serve.
    /// </summary>
    private async Task<int> CollectEntriesAsync(SegmentRecord segment)
    {
        var started = Stopwatch.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            var answered = 0;
            var goneCount = 0;
            foreach (var node in new[] { segment.MirrorA, segment.MirrorB })
            {
                if (_removedNodes.Contains(node))
                {
                    // Its copy is not served any more; only the other mirror can answer for the segment.
                    goneCount++;
                    continue;
                }

                (MirrorStatus Status, SegmentEntry[] Entries) entries;
                try
                {
                    entries = await Mirror(node, segment.SegmentId).GetEntriesAsync();
                }
                catch (Exception e) when (CallFailure.Is(e))
                {
                    continue;
                }

                if (entries.Status == MirrorStatus.Gone)
                {
                    answered++;
                    goneCount++;
                    continue;
                }

                if (entries.Status != MirrorStatus.Ok)
                {
                    continue;
                }

                answered++;
                foreach (var entry in entries.Entries)
                {
                    MergeDirty(entry.Lsn, segment, entry.Kind == LogRecordKind.Zero, (long)entry.OffsetBytes, (long)entry.LengthBytes);
                }
            }

            if (answered > 0)
            {
                return goneCount;
            }

            if (Stopwatch.GetElapsedTime(started) >= EntriesPatience)
            {
                throw new DataPathException(
                    $"segment {segment.SegmentId} cannot be listed: neither {segment.MirrorA} nor {segment.MirrorB} answers (tried {attempt + 1} times)");
            }

            await Task.Delay(EntriesRetryDelay);
        }
    }

    /// <summary>Keeps the highest LSN per block; an equal LSN is the same write seen twice.</summary>
    private void MergeDirty(Lsn lsn, SegmentRecord segment, bool zero, long offsetBytes, long lengthBytes)
    {
        var first = offsetBytes / BlockSizeBytes;
        var last = (offsetBytes + lengthBytes - 1) / BlockSizeBytes;
        for (var block = first; block <= last; block++)
        {
            if (!_dirty.TryGetValue(block, out var existing) || existing.Lsn < lsn)
            {
                _dirty[block] = new DirtyEntry(lsn, segment, zero, Recovered: true);
            }
        }
    }

    /// <summary>Chooses two distinct live storage nodes (see <see cref="ChooseMirrorsAsync"/>) and records the segment in the catalogue before its first append.</summary>
    private async Task<SegmentRecord> NewSegmentAsync(IReadOnlyCollection<string> exclude)
    {
        var live = await clusterView.WaitForActiveNodesAsync(NodeRoles.Storage, 2, TimeSpan.FromSeconds(5));
        var candidates = live.Where(n => !exclude.Contains(n) && !_removedNodes.Contains(n)).ToList();
        if (candidates.Count < 2)
        {
            candidates = live.Where(n => !_removedNodes.Contains(n)).ToList();
        }

        if (candidates.Count < 2)
        {
            throw new DataPathException($"writes need two live storage nodes; {live.Count} are active");
        }

        var segmentId = Guid.NewGuid();
        var (a, b) = await ChooseMirrorsAsync(segmentId, candidates);
        var segment = new SegmentRecord(segmentId, a, b, AttachedEpoch, Sealed: false);
        var recorded = await Volume.PutSegmentAsync(AttachedEpoch, segment);
        if (!recorded.Ok)
        {
            MarkLost();
            throw new DataPathException(recorded.Message);
        }

        return segment;
    }

    /// <summary>
    /// Seals the segment on both mirrors at once, except those in <paramref name="skip"/> (just failed: asking them would
    /// only wait for their timeout, and a copy left unsealed is sealed by its node when it restarts), then in the catalogue.
    /// </summary>
    private async Task SealSegmentAsync(SegmentRecord segment, IReadOnlyCollection<string>? skip = null)
    {
        var epoch = AttachedEpoch;
        await Task.WhenAll(new[] { segment.MirrorA, segment.MirrorB }
            .Where(node => skip is null || !skip.Contains(node))
            .Select(node => TryMirrorAsync(() => Mirror(node, segment.SegmentId).SealAsync(VolumeId, epoch))));
        await Volume.PutSegmentAsync(epoch, segment with { Sealed = true });
    }

    /// <summary>
    /// Sends one record, encoded once, to both mirrors of the current segment and returns when both committed it. A
    /// mirror that fails moves the writer to a new pair and the same record (same LSN) is sent again, until the
    /// caller's deadline (<paramref name="notAfterUtcTicks"/>, 0 for none) passes.
    /// </summary>
    /// <remarks>
    /// <paramref name="payload"/> may be the caller's own buffer (an immutable argument of a call within this silo, such
    /// as the NBD server's): once the deadline has passed the caller may have timed out and reused it, so it is never
    /// read after that; each attempt encodes the record right after checking.
    /// </remarks>
    private async Task<(IoStatus Status, SegmentRecord? Segment)> AppendToMirrorsAsync(LogRecordHeader header, ReadOnlyMemory<byte> payload, long notAfterUtcTicks)
    {
        for (var attempt = 0; attempt < MaxAppendAttempts; attempt++)
        {
            await _rotation;
            if (!MayServe())
            {
                return (IoStatus.NotAttached, null);
            }

            if (WriteDeadline.Passed(notAfterUtcTicks))
            {
                ControllerInstruments.ExpiredWrites.Add(1);
                return (IoStatus.IoError, null);
            }

            var segment = _segment!;
            var started = Stopwatch.GetTimestamp();

            // An append on its way is activity too: an idle seal now would only refuse it and send it to the next segment.
            _lastAppendTicks = started;
            var record = LogRecord.EncodePooled(header with { SegmentId = segment.SegmentId }, payload.Span);
            var (statusA, statusB) = await AppendToBothMirrorsAsync(segment, record.Memory);
            if (statusA != MirrorStatus.Faulted && statusB != MirrorStatus.Faulted)
            {
                record.Dispose();
            }

            // Otherwise the buffer goes to the garbage collector, not the pool: a call that failed or timed out may still
            // sit in a connection's send queue, holding the record by reference until it is serialized.

            ControllerInstruments.MirrorAppendDuration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);

            if (statusA == MirrorStatus.Ok && statusB == MirrorStatus.Ok)
            {
                return (IoStatus.Ok, segment);
            }

            if (statusA == MirrorStatus.Fenced || statusB == MirrorStatus.Fenced)
            {
                MarkLost();
                LogLeaseLost(_name, localNode.Name);
                return (IoStatus.NotAttached, null);
            }

            if (statusA is MirrorStatus.NvramFull or MirrorStatus.QueueFull || statusB is MirrorStatus.NvramFull or MirrorStatus.QueueFull)
            {
                return (IoStatus.Busy, null);
            }

            if (statusA == MirrorStatus.Invalid || statusB == MirrorStatus.Invalid)
            {
                return (IoStatus.Invalid, null);
            }

            var failed = new List<string>();
            if (statusA is MirrorStatus.Faulted)
            {
                failed.Add(segment.MirrorA);
            }

            if (statusB is MirrorStatus.Faulted)
            {
                failed.Add(segment.MirrorB);
            }

            await RotateAsync(segment, failed, $"{segment.MirrorA}: {statusA}, {segment.MirrorB}: {statusB}");
        }

        return (IoStatus.IoError, null);
    }

    /// <summary>Seals a failed segment on whatever mirror still answers and opens a new one on a fresh pair (once per failure).</summary>
    private Task RotateAsync(SegmentRecord failedSegment, IReadOnlyCollection<string> failedNodes, string reason)
    {
        if (_segment != failedSegment || !_rotation.IsCompleted)
        {
            return _rotation;
        }

        LogRotate(_name, failedSegment.SegmentId, failedSegment.MirrorA, failedSegment.MirrorB, reason);
        _rotation = RotateCoreAsync(failedSegment, failedNodes);
        return _rotation;
    }

    private async Task RotateCoreAsync(SegmentRecord failedSegment, IReadOnlyCollection<string> failedNodes)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await SealSegmentAsync(failedSegment, failedNodes);
            _sealedSegments.Add(failedSegment with { Sealed = true });
            _segment = await NewSegmentAsync(failedNodes);
            ResetSegmentFill();
            ControllerInstruments.RotationDuration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception e) when (e is DataPathException || CallFailure.Is(e))
        {
            LogAttachFailed(_name, e.Message);
        }
    }

    /// <summary>Calls a mirror; a lost node, timeout or refusal to activate counts as <see cref="MirrorStatus.Faulted"/>.</summary>
    private static async Task<MirrorStatus> TryMirrorAsync(Func<Task<MirrorStatus>> call)
    {
        try
        {
            return await call();
        }
        catch (Exception e) when (CallFailure.Is(e))
        {
            return MirrorStatus.Faulted;
        }
    }
}
