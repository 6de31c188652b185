using Converge.Buffers;
using Converge.DataPath;
using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Grains.Placement;
using Converge.Log;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Converge.Grains.Segments;

/// <summary>
/// One segment of this node's log. Holds no data of its own: appends go to the node's group-committing writer
/// (usually over the data channel, without this grain), reads come back from the log by the log's own LSN index, so
/// deactivation loses nothing.
/// </summary>
[NodePinnedPlacement, Reentrant]
public sealed partial class LogSegmentGrain(
    StorageNodeLog nodeLog, SegmentAppender appender, Destage.DestageSignal destage, Rereplication.NodeFence fence, ILogger<LogSegmentGrain> logger)
    : Grain, ILogSegmentGrain
{
    private Guid _segmentId;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = this.GetPrimaryKeyString();
        _segmentId = Guid.Parse(key.AsSpan(key.IndexOf('/', StringComparison.Ordinal) + 1));
        return Task.CompletedTask;
    }

    public async Task<MirrorStatus> AppendCommittedAsync(ReadOnlyMemory<byte> encodedRecord)
    {
        var statuses = await appender.AppendAsync(encodedRecord);
        return statuses.Length == 1 ? statuses[0] : MirrorStatus.Invalid;
    }

    public Task<MirrorStatus[]> AppendCommittedBatchAsync(ReadOnlyMemory<byte> encodedRecords) => appender.AppendAsync(encodedRecords);

    public async Task<MirrorStatus> FenceAsync(Guid volumeId, ulong epoch)
    {
        if (fence.IsRemoved)
        {
            return MirrorStatus.Faulted;
        }

        try
        {
            return SegmentAppender.Map((await nodeLog.Log.FenceAsync(volumeId, epoch)).Status);
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
            var status = SegmentAppender.Map((await nodeLog.Log.SealAsync(_segmentId, volumeId, epoch)).Status);
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

        if (nodeLog.Log.FindRecord(_segmentId, lsn) is not { } entry)
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

        var record = LargeBuffers.Rent(entry.RecordLengthBytes);
        try
        {
            var length = nodeLog.Log.ReadRecord(entry.Address, record, out var header);
            var span = record.AsSpan(0, length);
            if (header.Lsn != lsn)
            {
                return Task.FromResult(new ReadReply(MirrorStatus.Invalid, null));
            }

            LogRecord.Payload(span, header).Slice((int)(offsetBytes - header.OffsetBytes), lengthBytes).CopyTo(data);
            return Task.FromResult(new ReadReply(MirrorStatus.Ok, data));
        }
        catch (ArgumentException)
        {
            return Task.FromResult(new ReadReply(MirrorStatus.Gone, null));
        }
        catch (LogCorruptionException e)
        {
            LogFault(_segmentId, e.Message);
            return Task.FromResult(new ReadReply(MirrorStatus.Faulted, null));
        }
        finally
        {
            LargeBuffers.Return(record);
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

    [LoggerMessage(Level = LogLevel.Error, Message = "Segment {SegmentId}: storage fault, this mirror fails stop: {Reason}")]
    private partial void LogFault(Guid segmentId, string reason);
}
