using Microsoft.Extensions.Logging;

namespace Converge.Grains.Log;

public sealed partial class SiloLog
{
    [LoggerMessage(Level = LogLevel.Warning, Message = "Slow log fdatasync of {Path}: {DurationMs:F1} ms for {Records} records")]
    private static partial void LogSlowFlush(ILogger logger, string path, double durationMs, int records);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Silo log poisoned (fail-stop, recover from the mirror): {Reason}")]
    private static partial void LogPoisoned(ILogger logger, string reason, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Log recovery truncated a torn tail at {Address} ({Bytes} bytes)")]
    private static partial void LogTruncated(ILogger logger, LogAddress address, long bytes);

    [LoggerMessage(Level = LogLevel.Error, Message = "Log recovery found corruption at {Address} ({Bytes} bytes, segment {SegmentId}); repair from the mirror")]
    private static partial void LogCorrupt(ILogger logger, LogAddress address, int bytes, Guid? segmentId);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Record {Lsn} committed into segment {SegmentId} after it was marked destaged: it was never applied to the extents")]
    private static partial void LogCommittedAfterDestage(ILogger logger, Converge.Log.Lsn lsn, Guid segmentId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not prepare a spare log chunk ahead of the writer: {Reason}")]
    private static partial void LogSparePreparationFailed(ILogger logger, string reason);
}
