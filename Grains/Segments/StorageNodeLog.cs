using Converge.Grains.Io;
using Converge.Grains.Log;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Segments;

/// <summary>
/// The storage node's one log, opened (and recovered) when the silo starts and shared by every segment grain on it.
/// In memory NVRAM mode the log lives in <c>/dev/shm</c>: it survives a process kill, not a machine loss.
/// </summary>
public sealed class StorageNodeLog : IDisposable
{
    private readonly Lazy<SiloLog> _log;
    private readonly FaultTrigger? _faults;
    private HashSet<Guid> _recoveredSegments = [];

    public StorageNodeLog(string dataDirectory, string nodeName, bool memoryMode, ILoggerFactory loggers, IStorageFileSystem? fileSystem = null, long bandwidthBytesPerSecond = 0)
    {
        var directory = memoryMode ? Path.Combine("/dev/shm", "converge", nodeName + "-" + StableHash(dataDirectory)) : dataDirectory;
        var options = new SiloLogOptions
        {
            Durability = memoryMode ? LogDurability.Memory : LogDurability.Fsync,
            BandwidthBytesPerSecond = bandwidthBytesPerSecond,
        };
        fileSystem ??= PosixFileSystem.Instance;
        _faults = FaultTrigger.FromEnvironment(fileSystem, nodeName);
        fileSystem = _faults?.FileSystem ?? fileSystem;
        _log = new Lazy<SiloLog>(() =>
        {
            var log = SiloLog.Open(directory, fileSystem, options, loggers.CreateLogger<SiloLog>());
            _recoveredSegments = [.. log.GetSegmentIds()];
            return log;
        });
    }

    public SiloLog Log => _log.Value;

    /// <summary>
    /// True for a segment this node's log held before the node (re)started. Its copy may lack records the writer had
    /// acknowledged with the other mirror before the crash (a torn or damaged tail), so it takes no more appends: the
    /// writer moves to a new segment, and the old one is read, sealed and never merged into (DESIGN decision 6).
    /// </summary>
    public bool WasRecovered(Guid segmentId)
    {
        _ = Log;
        return _recoveredSegments.Contains(segmentId);
    }

    public void Dispose()
    {
        _faults?.Dispose();
        if (_log.IsValueCreated)
        {
            _log.Value.Dispose();
        }
    }

    private static string StableHash(string text) => Converge.Log.Crc32C.Compute(System.Text.Encoding.UTF8.GetBytes(text)).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
}

public static class StorageNodeRegistration
{
    /// <summary>Registers the storage node's log; opened eagerly by the silo host so recovery happens before serving.</summary>
    public static IServiceCollection AddStorageNodeLog(this IServiceCollection services, string dataDirectory, string nodeName, bool memoryMode, long bandwidthBytesPerSecond = 0) =>
        services
            .AddSingleton(sp => new StorageNodeLog(dataDirectory, nodeName, memoryMode, sp.GetRequiredService<ILoggerFactory>(), bandwidthBytesPerSecond: bandwidthBytesPerSecond))
            .AddSingleton<SegmentAppender>();
}
