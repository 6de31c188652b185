using System.Diagnostics;
using Converge.Grains.Cluster;
using Converge.Grains.Segments;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Destage;

/// <summary>
/// Flushes this storage node's sealed log segments into the extent store in the background (DESIGN decisions 7 and 9):
/// every record of a segment is applied to both replicas of each placement group it touches, and only when every
/// apply is durable is the segment marked destaged here, releasing its NVRAM. Either mirror of a segment may destage
/// it and a second destage changes nothing (extent blocks keep the higher LSN). Segments found sealed in the recovered
/// log at start are destaged again, so a restart resumes where the node stopped.
/// </summary>
public sealed partial class DestageService(
    StorageNodeLog nodeLog,
    LocalNode localNode,
    IGrainFactory grains,
    DataChannel.DataChannelClient dataChannel,
    Extents.ExtentApplier applier,
    DestageSignal signal,
    Rereplication.NodeFence fence,
    ILogger<DestageService> logger) : BackgroundService
{
    /// <summary>Segments destaged at once; each holds at most <see cref="MaxBatchPayloadBytes"/> of record buffers.</summary>
    public const int MaxConcurrentSegments = 2;

    /// <summary>Payload gathered before one round of applies (per segment in flight).</summary>
    public const int MaxBatchPayloadBytes = 16 * 1024 * 1024;

    /// <summary>Extent writes gathered before one round of applies (well under the store's per-apply limit).</summary>
    public const int MaxBatchWrites = 4096;

    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly object _lock = new();
    private readonly Dictionary<Guid, (long DueTicks, int Failures)> _backoff = [];
    private long _destagedSegments;
    private long _destagedPayloadBytes;
    private long _busyTicks;
    private int _failures;

    /// <summary>Segments this node marked destaged since it started.</summary>
    public int DestagedSegments => (int)Interlocked.Read(ref _destagedSegments);

    /// <summary>Data bytes applied (to both replicas) since start.</summary>
    public long DestagedPayloadBytes => Interlocked.Read(ref _destagedPayloadBytes);

    /// <summary>Time spent destaging segments, summed over concurrent ones.</summary>
    public double BusyMs => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _busyTicks)).TotalMilliseconds;

    public int Failures => Volatile.Read(ref _failures);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Recovery happens here if the host has not opened the log yet; a log that cannot open leaves nothing to destage.
        _ = nodeLog.Log;
        LogStarted(localNode.Name);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SealOrphansAsync();
                var due = DueSegments();
                if (due.Count > 0)
                {
                    await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentSegments, CancellationToken = stoppingToken },
                        async (segmentId, ct) => await DestageWithBackoffAsync(segmentId, ct));
                    continue;
                }

                await signal.WaitAsync(PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    /// <summary>
    /// Seals orphaned copies: segments this node recovered unsealed at start (it was down when its writer sealed the
    /// segment, or the seal record was lost with its chunk), and unsealed segments that took no record for
    /// <see cref="OrphanAfter"/> (this node missed the writer's seal, say while it was frozen). Writers seal their own
    /// segments after 2 s idle, and a writer still appending to a segment sealed here is told "sealed" and moves on;
    /// left alone, an orphan would never be destaged, pin its log chunks for good and keep the segment in the volume's
    /// catalogue. The seal record carries the volume's fence epoch when that is newer, since an older one is refused.
    /// </summary>
    private async Task SealOrphansAsync()
    {
        if (fence.IsRemoved)
        {
            return;
        }

        var log = nodeLog.Log;
        var now = Stopwatch.GetTimestamp();
        var unsealed = new HashSet<Guid>();
        foreach (var id in log.GetSegmentIds())
        {
            if (log.GetSegment(id) is not { IsSealed: false, IsDestaged: false } info)
            {
                continue;
            }

            unsealed.Add(id);
            if (!nodeLog.WasRecovered(id))
            {
                if (!_idleSince.TryGetValue(id, out var seen) || seen.Records != info.Records.Count)
                {
                    _idleSince[id] = (info.Records.Count, now);
                    continue;
                }

                if (Stopwatch.GetElapsedTime(seen.SinceTicks, now) < OrphanAfter)
                {
                    continue;
                }
            }

            var epoch = Math.Max(info.Epoch, log.GetFenceEpoch(info.VolumeId) ?? 0);
            try
            {
                var result = await log.SealAsync(id, info.VolumeId, epoch);
                LogSealedOrphan(localNode.Name, id, info.VolumeId, result.Status.ToString());
            }
            catch (Converge.Grains.Io.StorageFaultException e)
            {
                LogDeferred(localNode.Name, id, PollInterval.TotalMilliseconds, e.Message);
                return;
            }
        }

        foreach (var id in _idleSince.Keys.Where(id => !unsealed.Contains(id)).ToList())
        {
            _idleSince.Remove(id);
        }
    }

    /// <summary>How long an unsealed segment may take no record before this node seals it as orphaned.</summary>
    public static readonly TimeSpan OrphanAfter = TimeSpan.FromSeconds(30);

    /// <summary>Unsealed segments by record count and since when that count has not changed (read by the destage loop only).</summary>
    private readonly Dictionary<Guid, (int Records, long SinceTicks)> _idleSince = [];

    /// <summary>Sealed, not yet destaged segments whose backoff (after a failure) has passed, oldest log order first.</summary>
    private List<Guid> DueSegments()
    {
        var log = nodeLog.Log;
        var now = Stopwatch.GetTimestamp();
        var due = new List<Guid>();
        if (fence.IsRemoved)
        {
            // A removed node's segments were destaged (or are being) from their other mirrors.
            return due;
        }

        var undestaged = new HashSet<Guid>();
        foreach (var id in log.GetSegmentIds())
        {
            var info = log.GetSegment(id);
            if (info is null || !info.IsSealed || info.IsDestaged)
            {
                continue;
            }

            undestaged.Add(id);

            lock (_lock)
            {
                if (_backoff.TryGetValue(id, out var wait) && wait.DueTicks > now)
                {
                    continue;
                }
            }

            due.Add(id);
        }

        ForgetRoles(undestaged);
        return due;
    }

    private async Task DestageWithBackoffAsync(Guid segmentId, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            if (nodeLog.Log.GetSegment(segmentId) is { IsSealed: true, IsDestaged: false } info)
            {
                switch (await FollowLeaderAsync(segmentId, info.VolumeId))
                {
                    case FollowerStep.ReleasedByLeader:
                        lock (_lock)
                        {
                            _backoff.Remove(segmentId);
                        }

                        return;
                    case FollowerStep.Wait:
                        lock (_lock)
                        {
                            var failures = _backoff.TryGetValue(segmentId, out var previous) ? previous.Failures : 0;
                            _backoff[segmentId] = (Stopwatch.GetTimestamp() + (long)(FollowerPoll.TotalSeconds * Stopwatch.Frequency), failures);
                        }

                        return;
                }
            }

            var bytes = await DestageSegmentAsync(segmentId, cancellationToken);
            Interlocked.Add(ref _destagedPayloadBytes, bytes);
            Interlocked.Increment(ref _destagedSegments);
            lock (_lock)
            {
                _backoff.Remove(segmentId);
            }
        }
        catch (Exception e) when (e is DestageDeferredException or OrleansException or TimeoutException or Placement.NodeUnavailableException
            or IOException or InvalidDataException)
        {
            Interlocked.Increment(ref _failures);
            TimeSpan delay;
            lock (_lock)
            {
                var failures = _backoff.TryGetValue(segmentId, out var previous) ? previous.Failures + 1 : 1;
                delay = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, MinBackoff.Ticks << Math.Min(failures - 1, 10)));
                _backoff[segmentId] = (Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency), failures);
            }

            LogDeferred(localNode.Name, segmentId, delay.TotalMilliseconds, e.Message);
        }
        finally
        {
            Interlocked.Add(ref _busyTicks, Stopwatch.GetTimestamp() - started);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Destage on {Node}: sealed orphaned segment {SegmentId} of volume {VolumeId} (recovered unsealed, or idle) ({Status})")]
    private partial void LogSealedOrphan(string node, Guid segmentId, Guid volumeId, string status);

    [LoggerMessage(Level = LogLevel.Information, Message = "Destage on {Node} started")]
    private partial void LogStarted(string node);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Destage on {Node}: segment {SegmentId} deferred {DelayMs:F0} ms: {Reason}")]
    private partial void LogDeferred(string node, Guid segmentId, double delayMs, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Destage on {Node}: segment {SegmentId} of volume {VolumeId} destaged ({Records} records, {Bytes} bytes, {ElapsedMs:F0} ms)")]
    private partial void LogDestaged(string node, Guid segmentId, Guid volumeId, int records, long bytes, double elapsedMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Destage on {Node}: segment {SegmentId} of deleted volume {VolumeId} dropped")]
    private partial void LogDropped(string node, Guid segmentId, Guid volumeId);
}

/// <summary>A replica refused or could not take an apply; the segment is tried again later.</summary>
public sealed class DestageDeferredException(string message) : Exception(message);

public static class DestageRegistration
{
    /// <summary>Registers the extent store registry and the background destage of this storage node's log.</summary>
    public static IServiceCollection AddDestage(this IServiceCollection services)
    {
        services.AddSingleton<DestageSignal>();
        services.AddSingleton<Rereplication.NodeFence>();
        services.AddHostedService<Rereplication.NodeFenceService>();
        services.AddSingleton<Extents.ExtentStoreRegistry>(sp => new Extents.ExtentStoreRegistry(
            sp.GetRequiredService<LocalNode>(), sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<Extents.ExtentApplier>();
        services.AddSingleton<DestageService>();
        services.AddHostedService(sp => sp.GetRequiredService<DestageService>());
        return services;
    }
}
