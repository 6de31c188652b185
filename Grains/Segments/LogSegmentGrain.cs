using Converge.DataPath;
using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Grains.Placement;
using Converge.Log;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Converge.Grains.Segments;

/// <summary>
/// One segment of this node's log. Holds no data of its own: appends go to the node's group-committing writer,
/// reads come back from the log by address. The LSN index is rebuilt from the log on activation, so deactivation
/// loses nothing.
/// </summary>
[NodePinnedPlacement, Reentrant]
public sealed partial class LogSegmentGrain(StorageNodeLog nodeLog, Destage.DestageSignal destage, Rereplication.NodeFence fence, ILogger<LogSegmentGrain> logger)
    : Grain, ILogSegmentGrain
{
    private readonly Dictionary<Lsn, LogIndexEntry> _byLsn = [];
    private Guid _segmentId;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = this.GetPrimaryKeyString();
        _segmentId = Guid.Parse(key.AsSpan(key.IndexOf('/', StringComparison.Ordinal) + 1));
        if (nodeLog.Log.GetSegment(_segmentId) is { } segment)
        {
            foreach (var entry in segment.Records)
            {
                _byLsn[entry.Lsn] = entry;
            }
        }

        return Task.CompletedTask;
    }

    public async Task<MirrorStatus> AppendCommittedAsync(ReadOnlyMemory<byte> encodedRecord)
    {
        if (RefusesAppends())
        {
            return MirrorStatus.Faulted;
        }

        try
        {
            return Committed(encodedRecord, await nodeLog.Log.AppendCommittedAsync(encodedRecord));
        }
        catch (StorageFaultException e)
        {
            LogFault(_segmentId, e.Message);
            return MirrorStatus.Faulted;
        }
    }

    public async Task<MirrorStatus[]> AppendCommittedBatchAsync(ReadOnlyMemory<byte> encodedRecords)
    {
        var records = LogRecord.SplitJoined(encodedRecords, out var malformedTail);
        var statuses = new MirrorStatus[records.Count + (malformedTail ? 1 : 0)];
        if (malformedTail)
        {
            statuses[^1] = MirrorStatus.Invalid;
        }

        if (RefusesAppends())
        {
            statuses.AsSpan(0, records.Count).Fill(MirrorStatus.Faulted);
            return statuses;
        }

        // Every record is queued before any is awaited, so the whole batch can share the log's next group commit.
        var appends = new ValueTask<AppendResult>[records.Count];
        var queued = 0;
        try
        {
            for (; queued < records.Count; queued++)
            {
                appends[queued] = nodeLog.Log.AppendCommittedAsync(records[queued]);
            }
        }
        catch (StorageFaultException e)
        {
            LogFault(_segmentId, e.Message);
            statuses.AsSpan(queued, records.Count - queued).Fill(MirrorStatus.Faulted);
        }

        for (var i = 0; i < queued; i++)
        {
            try
            {
                statuses[i] = Committed(records[i], await appends[i]);
            }
            catch (StorageFaultException e)
            {
                LogFault(_segmentId, e.Message);
                statuses[i] = MirrorStatus.Faulted;
            }
        }

        return statuses;
    }

    /// <summary>A removed node, or a copy that survived a restart of the node (it may miss acknowledged records: the writer must rotate).</summary>
    private bool RefusesAppends()
    {
        if (fence.IsRemoved)
        {
            return true;
        }

        if (nodeLog.WasRecovered(_segmentId))
        {
            LogRestarted(_segmentId);
            return true;
        }

        return false;
    }

    /// <summary>Indexes a committed record by its LSN and maps the log's answer.</summary>
    private MirrorStatus Committed(ReadOnlyMemory<byte> encodedRecord, AppendResult result)
    {
        if (result.IsCommitted && LogRecord.TryDecodeHeader(encodedRecord.Span, out var header) == LogRecordDecodeStatus.Ok)
        {
            _byLsn[header.Lsn] = new LogIndexEntry(result.Address, header.Lsn, header.Kind, header.OffsetBytes, header.LengthBytes, encodedRecord.Length);
        }

        return Map(result.Status);
    }

    public async Task<MirrorStatus> FenceAsync(Guid volumeId, ulong epoch)
    {
        if (fence.IsRemoved)
        {
            return MirrorStatus.Faulted;
        }

        try
        {
            return Map((await nodeLog.Log.FenceAsync(volumeId, epoch)).Status);
        }
        catch (StorageFaultException e)
        {
            LogFault(_segmentId, e.Message);
            return MirrorStatus.Faulted;
        }
    }

    public async Task<MirrorStatus> SealAsync(Guid volumeId, ulong epoch)
    {
        if (fence.IsRemoved)
        {
            return MirrorStatus.Faulted;
        }

        try
        {
            var status = Map((await nodeLog.Log.SealAsync(_segmentId, volumeId, epoch)).Status);
            destage.Poke();
            return status == MirrorStatus.Sealed ? MirrorStatus.Ok : status;
        }
        catch (StorageFaultException e)
        {
            LogFault(_segmentId, e.Message);
            return MirrorStatus.Faulted;
        }
    }

    public Task<ReadReply> ReadAsync(Lsn lsn, ulong offsetBytes, int lengthBytes)
    {
        if (fence.IsRemoved)
        {
            return Task.FromResult(new ReadReply(MirrorStatus.Faulted, null));
        }

        if (!_byLsn.TryGetValue(lsn, out var entry))
        {
            return Task.FromResult(new ReadReply(MirrorStatus.Gone, null));
        }

        if (offsetBytes < entry.OffsetBytes || offsetBytes + (ulong)lengthBytes > entry.OffsetBytes + entry.LengthBytes)
        {
            return Task.FromResult(new ReadReply(MirrorStatus.Invalid, null));
        }

        var data = new byte[lengthBytes];
        if (entry.Kind == LogRecordKind.Zero)
        {
            return Task.FromResult(new ReadReply(MirrorStatus.Ok, data));
        }

        var record = System.Buffers.ArrayPool<byte>.Shared.Rent(entry.RecordLengthBytes);
        try
        {
            var length = nodeLog.Log.ReadRecord(entry.Address, record);
            var span = record.AsSpan(0, length);
            if (LogRecord.TryDecode(span, out var header) != LogRecordDecodeStatus.Ok || header.Lsn != lsn)
            {
                return Task.FromResult(new ReadReply(MirrorStatus.Invalid, null));
            }

            LogRecord.Payload(span, header).Slice((int)(offsetBytes - header.OffsetBytes), lengthBytes).CopyTo(data);
            return Task.FromResult(new ReadReply(MirrorStatus.Ok, data));
        }
        catch (ArgumentException)
        {
            _byLsn.Remove(lsn);
            return Task.FromResult(new ReadReply(MirrorStatus.Gone, null));
        }
        catch (LogCorruptionException e)
        {
            LogFault(_segmentId, e.Message);
            return Task.FromResult(new ReadReply(MirrorStatus.Faulted, null));
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(record);
        }
    }

    public Task<(MirrorStatus Status, SegmentEntry[] Entries)> GetEntriesAsync()
    {
        if (fence.IsRemoved)
        {
            return Task.FromResult((MirrorStatus.Faulted, Array.Empty<SegmentEntry>()));
        }

        var segment = nodeLog.Log.GetSegment(_segmentId);
        if (segment is null || segment.IsDestaged)
        {
            return Task.FromResult((MirrorStatus.Gone, Array.Empty<SegmentEntry>()));
        }

        var entries = segment.Records
            .Where(r => r.Kind is LogRecordKind.Write or LogRecordKind.Zero)
            .Select(r => new SegmentEntry(r.Lsn, r.Kind, r.OffsetBytes, r.LengthBytes))
            .ToArray();
        return Task.FromResult((MirrorStatus.Ok, entries));
    }

    public Task<bool> IsDestagedAsync()
    {
        if (fence.IsRemoved)
        {
            // Nothing waits for a removed node: its segments are destaged from their other mirror.
            return Task.FromResult(true);
        }

        var segment = nodeLog.Log.GetSegment(_segmentId);
        return Task.FromResult(segment is null || segment.IsDestaged);
    }

    public Task<LeaderDestage> GetLeaderDestageAsync()
    {
        var log = nodeLog.Log;
        if (fence.IsRemoved || log.IsPoisoned || log.Recovery.CorruptRegions.Count > 0 || log.GetSegment(_segmentId) is not { } segment)
        {
            // This copy cannot vouch for every acknowledged record: the follower applies its own.
            return Task.FromResult(LeaderDestage.WillNot);
        }

        return Task.FromResult(segment.IsDestaged ? LeaderDestage.Destaged : LeaderDestage.Pending);
    }

    private static MirrorStatus Map(AppendStatus status) => status switch
    {
        AppendStatus.Ok => MirrorStatus.Ok,
        AppendStatus.Fenced => MirrorStatus.Fenced,
        AppendStatus.Sealed => MirrorStatus.Sealed,
        AppendStatus.SegmentFull => MirrorStatus.SegmentFull,
        AppendStatus.NvramFull => MirrorStatus.NvramFull,
        AppendStatus.QueueFull => MirrorStatus.QueueFull,
        _ => MirrorStatus.Invalid,
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "Segment {SegmentId}: refusing an append, the segment predates this node's restart")]
    private partial void LogRestarted(Guid segmentId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Segment {SegmentId}: storage fault, this mirror fails stop: {Reason}")]
    private partial void LogFault(Guid segmentId, string reason);
}
