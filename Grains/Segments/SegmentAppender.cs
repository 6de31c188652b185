using Converge.DataPath;
using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Log;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Segments;

/// <summary>
/// The storage node's side of an append, whoever carries it here (the data channel, or a segment grain call): the
/// node's own refusals, then the node's group-committing log, one status per record. Stateless beyond its services, so
/// appends for every segment run through it concurrently.
/// </summary>
public sealed partial class SegmentAppender(StorageNodeLog nodeLog, Rereplication.NodeFence fence, ILogger<SegmentAppender> logger)
{
    /// <summary>
    /// Appends records laid end to end (each delimited by its own header) and answers, once each is committed or refused,
    /// one status per record in order, plus <see cref="MirrorStatus.Invalid"/> for a malformed tail.
    /// </summary>
    /// <param name="encodedRecords">Borrowed until the returned task completes: the log writes from it.</param>
    public async Task<MirrorStatus[]> AppendAsync(ReadOnlyMemory<byte> encodedRecords)
    {
        var records = LogRecord.SplitJoined(encodedRecords, out var malformedTail);
        var statuses = new MirrorStatus[records.Count + (malformedTail ? 1 : 0)];
        if (malformedTail)
        {
            statuses[^1] = MirrorStatus.Invalid;
        }

        if (fence.IsRemoved)
        {
            statuses.AsSpan(0, records.Count).Fill(MirrorStatus.Faulted);
            return statuses;
        }

        // Every record is queued before any is awaited, so the whole batch can share the log's next group commit.
        var appends = new ValueTask<AppendResult>[records.Count];
        var queued = new bool[records.Count];
        var log = nodeLog.Log;
        var restartedSegment = Guid.Empty;
        for (var i = 0; i < records.Count; i++)
        {
            if (LogRecord.TryDecodeHeader(records[i].Span, out var header) == LogRecordDecodeStatus.Ok && nodeLog.WasRecovered(header.SegmentId))
            {
                // A copy that survived a restart of this node may miss acknowledged records: the writer must rotate.
                if (restartedSegment != header.SegmentId)
                {
                    restartedSegment = header.SegmentId;
                    LogRestarted(header.SegmentId);
                }

                statuses[i] = MirrorStatus.Faulted;
                continue;
            }

            try
            {
                // The continuation below only collects statuses for the data channel's reply: it may run on the writer.
                appends[i] = log.AppendCommittedAsync(records[i], answerOnWriter: true);
                queued[i] = true;
            }
            catch (StorageFaultException e)
            {
                LogFault(e.Message);
                statuses[i] = MirrorStatus.Faulted;
            }
            catch (ObjectDisposedException)
            {
                // The silo is stopping.
                statuses[i] = MirrorStatus.Faulted;
            }
        }

        for (var i = 0; i < records.Count; i++)
        {
            if (!queued[i])
            {
                continue;
            }

            try
            {
                statuses[i] = Map((await appends[i].ConfigureAwait(false)).Status);
            }
            catch (Exception e) when (e is StorageFaultException or ObjectDisposedException)
            {
                LogFault(e.Message);
                statuses[i] = MirrorStatus.Faulted;
            }
        }

        return statuses;
    }

    public static MirrorStatus Map(AppendStatus status) => status switch
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

    [LoggerMessage(Level = LogLevel.Error, Message = "Append refused, this node's log fails stop: {Reason}")]
    private partial void LogFault(string reason);
}
