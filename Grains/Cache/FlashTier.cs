using System.Diagnostics;
using System.Threading.Channels;
using Converge.Grains.Io;
using Converge.Log;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Cache;

/// <summary>
/// The local flash tier: a file of fixed slots (<see cref="FlashSlot"/>) filled as a ring by one background writer from
/// a bounded queue of blocks evicted from RAM. The index (key to slot and LSN) lives only in memory.
/// </summary>
/// <remarks>
/// No fsync: nothing in the file is ever trusted after a restart (the file is truncated on open, so the tier starts
/// cold) and every slot is checked against its CRCs and the index on read, so losing or tearing a write can only cost
/// a miss. Starting cold is the simple way to never serve a block written elsewhere while this node was down.
/// Lock order: a RAM shard's lock, then <see cref="Lock"/>; file I/O happens outside both.
/// </remarks>
internal sealed partial class FlashTier : IAsyncDisposable
{
    private readonly IStorageFile _file;
    private readonly CacheCounters _counters;
    private readonly CacheInstruments? _instruments;
    private readonly ILogger _logger;
    private readonly Dictionary<CacheKey, Mapping> _index = [];
    private readonly Dictionary<CacheKey, Demotion> _pending = [];
    private readonly CacheKey[] _slotKeys;
    private readonly bool[] _slotLive;
    private readonly uint[] _slotGenerations;
    private readonly Channel<Demotion> _queue;
    private readonly Task _writer;
    private readonly BlockBufferPool _buffers;
    private long _nextSlot;
    private bool _disabled;

    public FlashTier(BlockCacheOptions options, CacheCounters counters, CacheInstruments? instruments, ILogger logger, BlockBufferPool buffers)
    {
        Debug.Assert(options.FlashEnabled, "flash tier built without a directory or capacity");
        BlockBytes = options.FlashBlockBytes;
        SlotBytes = FlashSlot.HeaderBytes + BlockBytes;
        SlotCount = (int)Math.Min(options.FlashCapacityBytes / SlotBytes, int.MaxValue / 2);
        _counters = counters;
        _instruments = instruments;
        _logger = logger;
        _buffers = buffers;
        _slotKeys = new CacheKey[SlotCount];
        _slotLive = new bool[SlotCount];
        _slotGenerations = new uint[SlotCount];
        Directory.CreateDirectory(options.FlashDirectory!);
        FilePath = Path.Combine(options.FlashDirectory!, "flash.dat");
        _file = options.FileSystem.Open(FilePath, create: true);

        // Start cold: whatever an earlier run left may be stale, so it is cut away rather than trusted.
        _file.SetLength(0);
        _file.SetLength((long)SlotCount * SlotBytes);
        _queue = Channel.CreateBounded<Demotion>(new BoundedChannelOptions(options.DemotionQueueLength)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Run(WriteLoopAsync);
    }

    public Lock Lock { get; } = new();

    public string FilePath { get; }

    public int BlockBytes { get; }

    public int SlotBytes { get; }

    public int SlotCount { get; }

    /// <summary>Blocks the index maps to a slot (each <see cref="BlockBytes"/>).</summary>
    public int Count
    {
        get
        {
            lock (Lock)
            {
                return _index.Count;
            }
        }
    }

    public bool Disabled
    {
        get
        {
            lock (Lock)
            {
                return _disabled;
            }
        }
    }

    /// <summary>The LSN flash holds or is about to hold for a block, if any. Caller holds <see cref="Lock"/>.</summary>
    public bool TryGetNewest(in CacheKey key, out Lsn lsn)
    {
        var found = false;
        lsn = default;
        if (_index.TryGetValue(key, out var mapping))
        {
            (found, lsn) = (true, mapping.Lsn);
        }

        if (_pending.TryGetValue(key, out var pending) && (!found || pending.Lsn > lsn))
        {
            (found, lsn) = (true, pending.Lsn);
        }

        return found;
    }

    /// <summary>Forgets a block (its slot is reused later; a queued demotion of it is discarded). Caller holds <see cref="Lock"/>.</summary>
    public void Remove(in CacheKey key)
    {
        if (_index.Remove(key, out var mapping))
        {
            _slotLive[mapping.Slot] = false;
        }

        _pending.Remove(key);
    }

    /// <summary>Forgets every block of a volume. Caller holds <see cref="Lock"/>.</summary>
    public void RemoveVolume(Guid volumeId)
    {
        List<CacheKey>? victims = null;
        foreach (var key in _index.Keys)
        {
            if (key.VolumeId == volumeId)
            {
                (victims ??= []).Add(key);
            }
        }

        foreach (var key in _pending.Keys)
        {
            if (key.VolumeId == volumeId)
            {
                (victims ??= []).Add(key);
            }
        }

        foreach (var key in victims ?? [])
        {
            Remove(key);
        }
    }

    /// <summary>
    /// Queues a block evicted from RAM for writing to flash, taking ownership of <paramref name="data"/> (from the
    /// cache's <see cref="BlockBufferPool"/>, where it goes back once written) when it returns true. Never blocks: a full queue drops the block.
    /// Caller holds the evicting shard's lock (not <see cref="Lock"/>).
    /// </summary>
    public bool TryDemote(in CacheKey key, Lsn lsn, byte[] data, int lengthBytes)
    {
        if (lengthBytes != BlockBytes)
        {
            return false;
        }

        lock (Lock)
        {
            if (_disabled || (TryGetNewest(key, out var held) && held >= lsn))
            {
                return false;
            }

            var demotion = new Demotion(key, lsn, data, null);
            if (!_queue.Writer.TryWrite(demotion))
            {
                Interlocked.Increment(ref _counters.DemotionDroppedCount);
                return false;
            }

            _pending[key] = demotion;
            Interlocked.Increment(ref _counters.DemotionCount);
            return true;
        }
    }

    /// <summary>Completes once every demotion queued before the call has been written or discarded.</summary>
    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        var barrier = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.Writer.WriteAsync(new Demotion(default, default, [], barrier), cancellationToken);
        await barrier.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer.WaitAsync(TimeSpan.FromSeconds(10));
        lock (Lock)
        {
            _disabled = true;
        }

        _file.Dispose();
    }

    private void Disable(Exception error)
    {
        Interlocked.Increment(ref _counters.FlashErrorCount);
        lock (Lock)
        {
            _disabled = true;
            _index.Clear();
            _pending.Clear();
            Array.Clear(_slotLive);
        }

        LogFlashDisabled(_logger, FilePath, error);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Flash cache {Path} failed and is disabled; reads fall back to RAM and the mirrors")]
    private static partial void LogFlashDisabled(ILogger logger, string path, Exception error);

    private readonly record struct Mapping(int Slot, Lsn Lsn);

    private sealed record Demotion(CacheKey Key, Lsn Lsn, byte[] Data, TaskCompletionSource? Barrier);
}
