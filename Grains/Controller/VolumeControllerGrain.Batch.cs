using Converge.Buffers;
using Converge.DataPath;

namespace Converge.Grains.Controller;

/// <summary>
/// Coalesces the volume's small appends into batches, one data-channel frame per mirror per batch. A record is sent at
/// once when fewer than <see cref="MaxAppendBatchesInFlight"/> batches are out (so a lone write waits for nothing);
/// otherwise it waits for a batch to come back and leaves with every record queued behind it. At queue depth 32 that
/// turns 64 frames (32 records, two mirrors) into a handful, and the storage side still group-commits them in one fdatasync.
/// </summary>
public sealed partial class VolumeControllerGrain
{
    /// <summary>Batches out at once per volume; a third waits for one of them (two keep each mirror's log writer busy).</summary>
    private const int MaxAppendBatchesInFlight = 2;

    /// <summary>A batch stops growing at this size.</summary>
    private const int MaxAppendBatchBytes = 1024 * 1024;

    /// <summary>Records larger than this go out alone, within the append window: their call's cost is small beside their bytes.</summary>
    private const int MaxBatchedRecordBytes = 32 * 1024;

    private readonly Queue<QueuedAppend> _appendQueue = new();
    private int _appendBatchesInFlight;

    /// <summary>Sends one encoded record to both mirrors of <paramref name="segment"/>, alone or in a batch, and returns both answers.</summary>
    private Task<(MirrorStatus A, MirrorStatus B)> AppendToBothMirrorsAsync(SegmentRecord segment, ReadOnlyMemory<byte> record)
    {
        if (record.Length > MaxBatchedRecordBytes)
        {
            return AppendWindowedAsync(segment, record);
        }

        var queued = new QueuedAppend(segment, record);
        _appendQueue.Enqueue(queued);
        PumpAppendBatches();
        return queued.Task;
    }

    private async Task<(MirrorStatus A, MirrorStatus B)> AppendAloneAsync(SegmentRecord segment, ReadOnlyMemory<byte> record)
    {
        var a = dataChannel.AppendAsync(segment.MirrorA, record, 1);
        var b = dataChannel.AppendAsync(segment.MirrorB, record, 1);
        return (Single(await a), Single(await b));
    }

    private void PumpAppendBatches()
    {
        while (_appendBatchesInFlight < MaxAppendBatchesInFlight && _appendQueue.Count > 0)
        {
            _appendBatchesInFlight++;
            _ = SendAppendBatchAsync(TakeAppendBatch());
        }
    }

    /// <summary>The oldest queued record and those behind it for the same segment, up to <see cref="MaxAppendBatchBytes"/>.</summary>
    private List<QueuedAppend> TakeAppendBatch()
    {
        var first = _appendQueue.Dequeue();
        var batch = new List<QueuedAppend>(Math.Min(_appendQueue.Count + 1, 64)) { first };
        var bytes = first.Record.Length;
        while (_appendQueue.TryPeek(out var next) && ReferenceEquals(next.Segment, first.Segment) && bytes + next.Record.Length <= MaxAppendBatchBytes)
        {
            batch.Add(_appendQueue.Dequeue());
            bytes += next.Record.Length;
        }

        return batch;
    }

    private async Task SendAppendBatchAsync(List<QueuedAppend> batch)
    {
        MirrorStatus[] statusesA = [];
        MirrorStatus[] statusesB = [];
        Exception? defect = null;
        try
        {
            if (batch.Count == 1)
            {
                var (a, b) = await AppendAloneAsync(batch[0].Segment, batch[0].Record);
                (statusesA, statusesB) = ([a], [b]);
            }
            else
            {
                (statusesA, statusesB) = await AppendJoinedAsync(batch);
            }
        }
        catch (Exception e)
        {
            // Not a mirror's failure (those are statuses): a defect. Every writer in the batch sees it, none waits forever.
            defect = e;
        }

        _appendBatchesInFlight--;
        PumpAppendBatches();
        for (var i = 0; i < batch.Count; i++)
        {
            if (defect is not null)
            {
                batch[i].TrySetException(defect);
            }
            else
            {
                batch[i].TrySetResult((statusesA[i], statusesB[i]));
            }
        }
    }

    /// <summary>The batch's records laid end to end in one pooled buffer and sent to both mirrors in one frame each.</summary>
    private async Task<(MirrorStatus[] A, MirrorStatus[] B)> AppendJoinedAsync(List<QueuedAppend> batch)
    {
        var total = 0;
        foreach (var queued in batch)
        {
            total += queued.Record.Length;
        }

        var joined = LargeBuffers.Rent(total);
        var position = 0;
        foreach (var queued in batch)
        {
            queued.Record.Span.CopyTo(joined.AsSpan(position));
            position += queued.Record.Length;
        }

        var segment = batch[0].Segment;
        var a = dataChannel.AppendAsync(segment.MirrorA, joined.AsMemory(0, total), batch.Count);
        var b = dataChannel.AppendAsync(segment.MirrorB, joined.AsMemory(0, total), batch.Count);
        var statusesA = OnePerRecord(await a, batch.Count);
        var statusesB = OnePerRecord(await b, batch.Count);
        if (Array.IndexOf(statusesA, MirrorStatus.Faulted) < 0 && Array.IndexOf(statusesB, MirrorStatus.Faulted) < 0)
        {
            // Otherwise left to the GC: a call that failed or timed out may still sit in a send queue (as for one record).
            LargeBuffers.Return(joined);
        }

        return (statusesA, statusesB);
    }

    /// <summary>A mirror's answer to one record: a short or long answer (a defect on its side) marks it invalid.</summary>
    private static MirrorStatus Single(MirrorStatus[] answered) => answered.Length == 1 ? answered[0] : MirrorStatus.Invalid;

    /// <summary>A mirror's answer to a batch, one status per record: a short answer marks the rest invalid.</summary>
    private static MirrorStatus[] OnePerRecord(MirrorStatus[] answered, int count)
    {
        if (answered.Length == count)
        {
            return answered;
        }

        var statuses = new MirrorStatus[count];
        statuses.AsSpan().Fill(MirrorStatus.Invalid);
        answered.AsSpan(0, Math.Min(count, answered.Length)).CopyTo(statuses);
        return statuses;
    }

    /// <summary>A record waiting for a batch, and the writer's promise of both mirrors' answers.</summary>
    private sealed class QueuedAppend(SegmentRecord segment, ReadOnlyMemory<byte> record) : TaskCompletionSource<(MirrorStatus A, MirrorStatus B)>
    {
        public SegmentRecord Segment { get; } = segment;

        public ReadOnlyMemory<byte> Record { get; } = record;
    }
}
