using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Log;

namespace Converge.Grains.Log;

public sealed partial class SiloLog
{
    /// <summary>
    /// Appends one encoded record (see <see cref="LogRecord"/>) and completes when it is committed (durable) or refused.
    /// </summary>
    /// <param name="encodedRecord">
    /// The record exactly as the writer encoded it; its CRC is verified here and kept on disk. Borrowed: the caller must
    /// not change or return the buffer until the returned task completes.
    /// </param>
    /// <param name="answerOnWriter">
    /// Whether the caller's continuation may run on the log's writer thread when the commit was a small group (a lone
    /// append, as at queue depth 1), sparing a thread hand-off before the answer leaves. Only for a caller whose
    /// continuation does little and never blocks (the data channel's reply); anything else would delay the next commit.
    /// </param>
    /// <returns>
    /// <see cref="AppendStatus.Ok"/> with the record's address once it is durable; otherwise a refusal and nothing was
    /// written. Throws <see cref="StorageFaultException"/> when the log is poisoned.
    /// </returns>
    public ValueTask<AppendResult> AppendCommittedAsync(ReadOnlyMemory<byte> encodedRecord, CancellationToken cancellationToken = default, bool answerOnWriter = false)
    {
        if (encodedRecord.Length > _options.MaxRecordBytes
            || LogRecord.TryDecode(encodedRecord.Span, out var header) != LogRecordDecodeStatus.Ok)
        {
            return Count(AppendResult.Refused(AppendStatus.Invalid));
        }

        var frameLength = LogFrame.FrameLength(encodedRecord.Length);
        lock (_lock)
        {
            ThrowIfUnusable();
            if (CanAdmit(frameLength))
            {
                return Enqueue(encodedRecord, header, frameLength, answerOnWriter);
            }
        }

        return AppendAfterWaitAsync(encodedRecord, header, frameLength, answerOnWriter, cancellationToken);
    }

    private async ValueTask<AppendResult> AppendAfterWaitAsync(ReadOnlyMemory<byte> encodedRecord, LogRecordHeader header, int frameLength, bool answerOnWriter, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.AdmissionTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            Task spaceFreed;
            AppendStatus refusal;
            ValueTask<AppendResult>? admitted = null;
            lock (_lock)
            {
                ThrowIfUnusable();
                if (CanAdmit(frameLength))
                {
                    admitted = Enqueue(encodedRecord, header, frameLength, answerOnWriter);
                }

                spaceFreed = _spaceFreed.Task;
                refusal = _admittedCount >= _options.MaxPendingAppends ? AppendStatus.QueueFull : AppendStatus.NvramFull;
            }

            if (admitted is { } enqueued)
            {
                return await enqueued.ConfigureAwait(false);
            }

            var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero)
            {
                return Counted(AppendResult.Refused(refusal));
            }

            try
            {
                await spaceFreed.WaitAsync(remaining, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Loop once more: space may have been freed just as the wait ran out.
            }
        }
    }

    /// <summary>Admission: budget and queue slots. Both are released when the record is destaged or refused.</summary>
    private bool CanAdmit(int frameLength)
    {
        AssertLockHeld();
        return _reservedBytes + frameLength <= _options.NvramBudgetBytes && _admittedCount < _options.MaxPendingAppends;
    }

    private ValueTask<AppendResult> Enqueue(ReadOnlyMemory<byte> encodedRecord, in LogRecordHeader header, int frameLength, bool answerOnWriter)
    {
        AssertLockHeld();
        // Decided here, in queue order, so a fence admitted before a write refuses it even within one batch.
        var status = Admit(header, frameLength);
        if (status != AppendStatus.Ok)
        {
            return Count(AppendResult.Refused(status));
        }

        _reservedBytes += frameLength;
        _admittedCount++;
        var pending = _pendingPool.TryPop(out var pooled) ? pooled : new PendingAppend(this);
        pending.Record = encodedRecord;
        pending.Header = header;
        pending.FrameLengthBytes = frameLength;
        pending.AnswerOnWriter = answerOnWriter;
        pending.AdmittedTimestamp = Stopwatch.GetTimestamp();
        _queue.Enqueue(pending);
        if (_queue.Count == 1)
        {
            Monitor.Pulse(_lock);
        }

        return pending.AsValueTask();
    }

    private AppendStatus Admit(in LogRecordHeader header, int frameLength)
    {
        AssertLockHeld();
        if (_fences.TryGetValue(header.VolumeId, out var fence) && header.Epoch < fence.Epoch)
        {
            return AppendStatus.Fenced;
        }

        if (header.Kind == LogRecordKind.Fence)
        {
            if (fence is null)
            {
                _fences[header.VolumeId] = new FenceState(header.Epoch);
            }
            else
            {
                fence.Epoch = header.Epoch;
            }

            return AppendStatus.Ok;
        }

        if (_segments.TryGetValue(header.SegmentId, out var segment))
        {
            if (segment.VolumeId != header.VolumeId)
            {
                return AppendStatus.Invalid;
            }

            if (header.Kind == LogRecordKind.Seal)
            {
                segment.Sealed = true;
                segment.AdmittedBytes += frameLength;
                return AppendStatus.Ok;
            }

            if (segment.Sealed || segment.Destaged)
            {
                return AppendStatus.Sealed;
            }

            if (segment.Epoch != header.Epoch)
            {
                return segment.Epoch > header.Epoch ? AppendStatus.Fenced : AppendStatus.Invalid;
            }

            if (segment.AdmittedBytes + frameLength > _options.MaxSegmentBytes)
            {
                return AppendStatus.SegmentFull;
            }
        }
        else
        {
            if (header.SegmentId == Guid.Empty)
            {
                return AppendStatus.Invalid;
            }

            segment = new SegmentState(header.SegmentId, header.VolumeId, header.Epoch) { Sealed = header.Kind == LogRecordKind.Seal };
            _segments.Add(header.SegmentId, segment);
        }

        segment.AdmittedBytes += frameLength;
        return AppendStatus.Ok;
    }

    private void ThrowIfUnusable()
    {
        AssertLockHeld();
        if (_fault is not null)
        {
            throw new StorageFaultException($"the log in {_directory} is poisoned: {_fault.Message}", _fault.Errno);
        }

        ObjectDisposedException.ThrowIf(_stopping, this);
    }

    private ValueTask<AppendResult> Count(AppendResult result) => ValueTask.FromResult(Counted(result));

    private AppendResult Counted(AppendResult result)
    {
        _instruments.Appends.Add(1, new KeyValuePair<string, object?>("status", result.Status.ToString()));
        return result;
    }

    /// <summary>Encodes and appends a fence of <paramref name="volumeId"/> at <paramref name="epoch"/>.</summary>
    public async ValueTask<AppendResult> FenceAsync(Guid volumeId, ulong epoch, CancellationToken cancellationToken = default)
    {
        using var record = LogRecord.EncodePooled(LogRecordHeader.ForFence(volumeId, epoch, Guid.Empty), default);
        return await AppendCommittedAsync(record.Memory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Encodes and appends a seal of <paramref name="segmentId"/> by a writer at <paramref name="epoch"/>.</summary>
    public async ValueTask<AppendResult> SealAsync(Guid segmentId, Guid volumeId, ulong epoch, CancellationToken cancellationToken = default)
    {
        using var record = LogRecord.EncodePooled(LogRecordHeader.ForSeal(volumeId, epoch, segmentId), default);
        return await AppendCommittedAsync(record.Memory, cancellationToken).ConfigureAwait(false);
    }
}
