using System.Diagnostics;
using Converge.Grains.Io;
using Converge.Log;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Grains.Log;

/// <summary>
/// The storage silo's NVRAM log: one append-only, checksummed log per storage silo, written by one writer thread that
/// group-commits records of all volumes (DESIGN decisions 2, 3, 6, 8, 12). Segments are ranges of it belonging to one
/// volume at one epoch. Format: docs/log-format.md.
/// </summary>
/// <remarks>
/// "Committed" means exactly one thing: <see cref="AppendCommittedAsync"/> returned <see cref="AppendStatus.Ok"/>, so the
/// record was fdatasync'd (or written to the tmpfs file in <see cref="LogDurability.Memory"/> mode). A failed write or
/// fdatasync poisons the log: pending and later appends throw <see cref="StorageFaultException"/>; nothing is retried.
/// </remarks>
public sealed partial class SiloLog : IDisposable
{
    private readonly object _lock = new();
    private readonly string _directory;
    private readonly IStorageFileSystem _fileSystem;
    private readonly SiloLogOptions _options;
    private readonly TokenBucket? _bandwidth;
    private readonly ILogger _logger;
    private readonly LogInstruments _instruments;
    private readonly bool _ownsInstruments;

    // Guarded by _lock.
    private readonly Queue<PendingAppend> _queue = new();
    private readonly Stack<PendingAppend> _pendingPool = new();
    private readonly SortedDictionary<long, Chunk> _chunks = [];
    private readonly Dictionary<Guid, SegmentState> _segments = [];
    private readonly Dictionary<Guid, FenceState> _fences = [];
    private long _reservedBytes;
    private int _admittedCount;
    private TaskCompletionSource _spaceFreed = NewSignal();
    private StorageFaultException? _fault;
    private bool _stopping;
    private long _lastCommittedChunk;

    // Owned by the writer thread after Open.
    private Chunk _current = null!;
    private int _writeOffsetBytes;
    private ulong _nextFrameSequence = 1;
    private ulong _committedThrough;
    private uint _previousCrc;

    private readonly Thread _writer;
    private long _flushCount;
    private long _batchCount;
    private long _committedRecordCount;

    private SiloLog(string directory, IStorageFileSystem fileSystem, SiloLogOptions options, ILogger? logger, LogInstruments? instruments)
    {
        _directory = directory;
        _fileSystem = fileSystem;
        _options = options;
        _bandwidth = options.BandwidthBytesPerSecond > 0
            ? new TokenBucket(options.BandwidthBytesPerSecond, Math.Max(options.BandwidthBytesPerSecond / 10, 256 * 1024))
            : null;
        _logger = logger ?? NullLogger.Instance;
        _ownsInstruments = instruments is null;
        _instruments = instruments ?? new LogInstruments();
        _writer = new Thread(WriterLoop) { IsBackground = true, Name = "converge-log-writer" };
    }

    /// <summary>What recovery found when this log was opened.</summary>
    public RecoveryReport Recovery { get; private set; } = null!;

    public string Directory => _directory;

    /// <summary>fdatasync calls made by commits (not counting chunk preparation).</summary>
    public long FlushCount => Interlocked.Read(ref _flushCount);

    /// <summary>Group commits completed.</summary>
    public long BatchCount => Interlocked.Read(ref _batchCount);

    /// <summary>Records committed by group commits (records per commit = this over <see cref="BatchCount"/>).</summary>
    public long CommittedRecordCount => Interlocked.Read(ref _committedRecordCount);

    /// <summary>How many frame bytes may wait for destage before appends get backpressure (<see cref="SiloLogOptions.NvramBudgetBytes"/>).</summary>
    public long NvramBudgetBytes => _options.NvramBudgetBytes;

    /// <summary>Frame bytes of committed or admitted records not yet destaged.</summary>
    public long NvramUsedBytes
    {
        get
        {
            lock (_lock)
            {
                return _reservedBytes;
            }
        }
    }

    /// <summary>True once a write or fdatasync failed: the log is fail-stopped until a restart recovers it.</summary>
    /// <summary>The fault that poisoned the log, or null while it is healthy.</summary>
    public string? FaultMessage
    {
        get
        {
            lock (_lock)
            {
                return _fault?.Message;
            }
        }
    }

    public bool IsPoisoned
    {
        get
        {
            lock (_lock)
            {
                return _fault is not null;
            }
        }
    }

    /// <summary>
    /// Opens (creating when absent) the log in <c>&lt;dataDirectory&gt;/log</c>, recovers it (verifies every frame,
    /// truncates a torn tail, reports corruption in the middle, rebuilds the segment index) and starts the writer.
    /// </summary>
    public static SiloLog Open(string dataDirectory, IStorageFileSystem fileSystem, SiloLogOptions options, ILogger? logger = null, LogInstruments? instruments = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var directory = Path.Combine(dataDirectory, "log");
        if (!System.IO.Directory.Exists(directory))
        {
            System.IO.Directory.CreateDirectory(directory);
            fileSystem.SyncDirectory(dataDirectory);
        }

        var log = new SiloLog(directory, fileSystem, options, logger, instruments);
        try
        {
            log.Recover();
        }
        catch
        {
            log.DisposeChunks();
            throw;
        }

        log._writer.Start();
        return log;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
            Monitor.PulseAll(_lock);
        }

        if (!_writer.Join(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException("the log writer did not stop within 30 s");
        }

        lock (_lock)
        {
            var stopped = new ObjectDisposedException(nameof(SiloLog));
            while (_queue.TryDequeue(out var pending))
            {
                pending.Fail(stopped);
            }

            _spaceFreed.TrySetResult();
        }

        WaitForReclaim();
        DisposeChunks();
        if (_ownsInstruments)
        {
            _instruments.Dispose();
        }
    }

    internal void ReturnPending(PendingAppend pending)
    {
        lock (_lock)
        {
            if (_pendingPool.Count < _options.MaxPendingAppends)
            {
                _pendingPool.Push(pending);
            }
        }
    }

    private void DisposeChunks()
    {
        lock (_lock)
        {
            foreach (var chunk in _chunks.Values)
            {
                chunk.File.Dispose();
            }

            _chunks.Clear();
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private string ChunkPath(long number) => Path.Combine(_directory, $"{number:D20}.log");

    private sealed class Chunk(long number, IStorageFile file)
    {
        public long Number { get; } = number;

        public IStorageFile File { get; } = file;

        /// <summary>Frame bytes of committed records in this chunk that are not destaged (guarded by the log's lock).</summary>
        public long LiveBytes { get; set; }

        /// <summary>Readers in flight; the chunk is recycled only at zero (guarded by the log's lock).</summary>
        public int Readers { get; set; }

        public bool Retired { get; set; }
    }

    private sealed class SegmentState(Guid segmentId, Guid volumeId, ulong epoch)
    {
        public Guid SegmentId { get; } = segmentId;

        public Guid VolumeId { get; } = volumeId;

        public ulong Epoch { get; } = epoch;

        /// <summary>A seal was admitted: the segment takes no more records (some admitted before it may still be committing).</summary>
        public bool Sealed { get; set; }

        /// <summary>
        /// A seal is committed, so every record admitted before it is committed and indexed too (one writer commits in
        /// admission order). Only from then is the segment complete: destage reads it, and only then may it be marked destaged.
        /// </summary>
        public bool SealCommitted { get; set; }

        public bool Destaged { get; set; }

        /// <summary>Frame bytes admitted to this segment, committed or not (for <see cref="SiloLogOptions.MaxSegmentBytes"/>).</summary>
        public long AdmittedBytes { get; set; }

        public List<LogIndexEntry> Records { get; } = [];

        /// <summary>Position in <see cref="Records"/> of each committed record, by LSN (a read names a record by its LSN).</summary>
        public Dictionary<Lsn, int> ByLsn { get; } = [];
    }

    private sealed class FenceState(ulong epoch)
    {
        public ulong Epoch { get; set; } = epoch;

        /// <summary>The committed record holding the fence, if any (a fence admitted but not yet committed has none).</summary>
        public LogAddress? Address { get; set; }

        public int FrameLengthBytes { get; set; }
    }

    [Conditional("DEBUG")]
    private void AssertLockHeld() => Debug.Assert(Monitor.IsEntered(_lock), "the log's lock must be held");
}
