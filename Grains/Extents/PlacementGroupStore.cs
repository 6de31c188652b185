using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Grains.Extents;

/// <summary>
/// The extents of one placement-group replica of one volume on this storage node, in
/// <c>&lt;dataDir&gt;/extents/&lt;volumeId&gt;/pg-&lt;n&gt;/</c>: a sparse data file and a checksummed metadata file per extent
/// (docs/extent-format.md). Destage applies records by LSN (higher wins, equal is a duplicate), so applying is
/// idempotent and order-free; reads verify every block's CRC32C and report corruption instead of returning it.
/// </summary>
/// <remarks>
/// Durability: <see cref="ApplyAsync"/> completes only after the data and then the metadata of every touched extent
/// are fdatasync'd; "applied" means durable. A storage fault (a failed write or fdatasync) fail-stops the store:
/// every later apply or import throws <see cref="StorageFaultException"/>; reopen it to serve again from what is on disk.
/// Reads stay allowed after a fault (checksums catch pages the kernel dropped). Applies are serialized; reads run
/// beside them. Memory is bounded by <see cref="ExtentStoreOptions.MaxCachedExtents"/>.
/// </remarks>
public sealed partial class PlacementGroupStore : IDisposable
{
    private static readonly TimeSpan ApplyGateTimeout = TimeSpan.FromSeconds(30);

    private readonly IStorageFileSystem _fileSystem;
    private readonly ExtentStoreOptions _options;
    private readonly ExtentInstruments _instruments;
    private readonly ILogger _logger;
    private readonly bool _ownsInstruments;
    private readonly SemaphoreSlim _applyGate = new(1, 1);
    private readonly object _gate = new();
    private readonly int _blockSizeBytes;
    private readonly int _blocksPerExtent;
    private readonly int _slotSizeBytes;
    private readonly KeyValuePair<string, object?> _groupTag;
    private StorageFaultException? _failure;
    private bool _disposed;

    private PlacementGroupStore(IStorageFileSystem fileSystem, string directory, Guid volumeId, int groupIndex,
        ExtentStoreOptions options, ExtentInstruments? instruments, ILogger logger)
    {
        _ownsInstruments = instruments is null;
        _fileSystem = fileSystem;
        Directory = directory;
        VolumeId = volumeId;
        GroupIndex = groupIndex;
        _options = options;
        _instruments = instruments ?? new ExtentInstruments();
        _logger = logger;
        _blockSizeBytes = options.BlockSizeBytes;
        _blocksPerExtent = options.BlocksPerExtent;
        _slotSizeBytes = ExtentMetadata.SlotSizeBytes(_blocksPerExtent);
        _groupTag = new("group", groupIndex);
    }

    public Guid VolumeId { get; }

    public int GroupIndex { get; }

    /// <summary>The placement group's directory.</summary>
    public string Directory { get; }

    public int BlockSizeBytes => _blockSizeBytes;

    public int BlocksPerExtent => _blocksPerExtent;

    /// <summary>True once a storage fault has fail-stopped the store.</summary>
    public bool IsFailed => Volatile.Read(ref _failure) is not null;

    /// <summary>The directory of one placement group: <c>&lt;dataDir&gt;/extents/&lt;volumeId&gt;/pg-&lt;n&gt;</c>.</summary>
    public static string GroupDirectory(string dataDirectory, Guid volumeId, int groupIndex) =>
        Path.Combine(dataDirectory, "extents", volumeId.ToString("D"), $"pg-{groupIndex}");

    /// <summary>File name stem of an extent: <c>s&lt;snapshot&gt;-e&lt;index, 10 digits&gt;</c>, then <c>.data</c> or <c>.meta</c>.</summary>
    public static string ExtentFileStem(ulong snapshotId, long extentIndex) => $"s{snapshotId}-e{extentIndex:D10}";

    /// <summary>Opens (creating its directories when missing) the store of one placement group replica.</summary>
    public static PlacementGroupStore Open(IStorageFileSystem fileSystem, string dataDirectory, Guid volumeId, int groupIndex,
        ExtentStoreOptions? options = null, ExtentInstruments? instruments = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        options ??= new ExtentStoreOptions();
        options.Validate();
        if (volumeId == Guid.Empty)
        {
            throw new ArgumentException("volume id must not be empty", nameof(volumeId));
        }

        if (groupIndex < 0 || groupIndex >= options.GroupCount)
        {
            throw new ArgumentOutOfRangeException(nameof(groupIndex), groupIndex, $"group index must be below the group count {options.GroupCount}");
        }

        var directory = GroupDirectory(dataDirectory, volumeId, groupIndex);
        if (!System.IO.Directory.Exists(directory))
        {
            // The seam has no mkdir; creating is plain, making the new entries durable goes through it.
            System.IO.Directory.CreateDirectory(directory);
            var volumeDirectory = Path.GetDirectoryName(directory)!;
            var extentsDirectory = Path.GetDirectoryName(volumeDirectory)!;
            fileSystem.SyncDirectory(volumeDirectory);
            fileSystem.SyncDirectory(extentsDirectory);
            fileSystem.SyncDirectory(Path.GetDirectoryName(extentsDirectory)!);
        }

        return new PlacementGroupStore(fileSystem, directory, volumeId, groupIndex, options, instruments, logger ?? NullLogger.Instance);
    }

    /// <summary>The highest LSN applied in an extent (None when never written): a peer's cached copy of a destaged block is current if at least this.</summary>
    public Lsn GetHighWaterLsn(long extentIndex)
    {
        ValidateExtent(extentIndex);
        lock (_gate)
        {
            ThrowIfDisposed();
            var handle = AcquireLocked(extentIndex, forWrite: false);
            try
            {
                return RequireMetadata(handle).HighWater;
            }
            finally
            {
                handle.Pins--;
            }
        }
    }

    public void Dispose()
    {
        // Bounded: an apply in flight gets a while to finish its fdatasyncs before the handles close under it.
        var entered = _applyGate.Wait(ApplyGateTimeout);
        try
        {
            lock (_gate)
            {
                if (_disposed)
                {
                    return;
                }

                _disposed = true;
                CloseAllLocked();
            }

            if (_ownsInstruments)
            {
                _instruments.Dispose();
            }
        }
        finally
        {
            if (entered)
            {
                _applyGate.Release();
            }
        }
    }

    /// <summary>Waits for the apply in flight (verify and delete exclude applies); bounded, because an fdatasync can hang.</summary>
    private void EnterApplyGate(string operation)
    {
        if (!_applyGate.Wait(ApplyGateTimeout))
        {
            throw new TimeoutException($"{operation} of volume {VolumeId:D} group {GroupIndex} waited {ApplyGateTimeout.TotalSeconds:F0} s for the apply in flight");
        }
    }

    private void ValidateExtent(long extentIndex)
    {
        if (extentIndex < 0 || extentIndex % _options.GroupCount != GroupIndex)
        {
            throw new ArgumentOutOfRangeException(nameof(extentIndex), extentIndex,
                $"extent {extentIndex} is not in placement group {GroupIndex} of {_options.GroupCount}");
        }
    }

    /// <summary>Checks a block range lies in one extent of this group; returns the extent and the first block within it.</summary>
    private long LocateRange(long blockIndex, int count, string parameterName, out int firstBlockInExtent)
    {
        if (blockIndex < 0 || count < 1)
        {
            throw new ArgumentOutOfRangeException(parameterName, $"block range {blockIndex}+{count} is empty or negative");
        }

        var extentIndex = blockIndex / _blocksPerExtent;
        firstBlockInExtent = (int)(blockIndex % _blocksPerExtent);
        if (firstBlockInExtent + (long)count > _blocksPerExtent)
        {
            throw new ArgumentOutOfRangeException(parameterName, $"block range {blockIndex}+{count} crosses the end of extent {extentIndex}");
        }

        ValidateExtent(extentIndex);
        return extentIndex;
    }

    private ExtentMetadata RequireMetadata(ExtentHandle handle) =>
        handle.Metadata ?? throw new ExtentCorruptException(
            $"extent {handle.ExtentIndex} of volume {VolumeId:D} group {GroupIndex} has no valid metadata ({handle.CorruptReason}); import it from a replica");

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private void ThrowIfFailed()
    {
        var failure = Volatile.Read(ref _failure);
        if (failure is not null)
        {
            throw new StorageFaultException($"extent store of volume {VolumeId:D} group {GroupIndex} is fail-stopped after: {failure.Message}", failure.Errno);
        }
    }

    private void FailStop(StorageFaultException fault)
    {
        Interlocked.CompareExchange(ref _failure, fault, null);
        Log.FailStopped(_logger, VolumeId, GroupIndex, fault);
    }

    private void FlushTimed(IStorageFile file, string kind)
    {
        var started = Stopwatch.GetTimestamp();
        file.FlushData();
        var elapsedMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        _instruments.FsyncDuration.Record(elapsedMs, _groupTag, new("file", kind));
        if (elapsedMs >= _options.SlowFsyncWarningMs)
        {
            Log.SlowFsync(_logger, file.Path, elapsedMs);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Slow fdatasync of {Path}: {ElapsedMs:F1} ms")]
        public static partial void SlowFsync(ILogger logger, string path, double elapsedMs);

        [LoggerMessage(2, LogLevel.Error, "Extent store of volume {VolumeId} group {GroupIndex} fail-stopped")]
        public static partial void FailStopped(ILogger logger, Guid volumeId, int groupIndex, Exception fault);

        [LoggerMessage(3, LogLevel.Warning, "Extent metadata {Path}: slot {Slot} unusable ({Problem}); using generation {Generation}")]
        public static partial void SlotFallback(ILogger logger, string path, int slot, string problem, ulong generation);

        [LoggerMessage(4, LogLevel.Error, "Extent metadata {Path} has no valid slot: {Problem}")]
        public static partial void MetadataCorrupt(ILogger logger, string path, string problem);
    }
}
