using System.Numerics;
using Converge.Log;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Grains.Cache;

/// <summary>
/// The compute node's block cache, shared by every volume controller on the node and outliving their activations:
/// a RAM tier (S3-FIFO, see <see cref="RamShard"/>) over a local flash tier (see <see cref="FlashTier"/>). Each block
/// carries the LSN of the write it holds, so a reader can prove it current against the dirty map; an older LSN never
/// replaces a newer one in either tier. Thread-safe. See docs/cache.md.
/// </summary>
public sealed partial class BlockCache : IRamEvictionSink, IAsyncDisposable, IDisposable
{
    private readonly RamShard[] _shards;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, ulong> _heldEpochs = new();
    private readonly int _shardMask;
    private readonly FlashTier? _flash;
    private readonly CacheInstruments? _instruments;
    private int _disposed;

    public BlockCache(BlockCacheOptions options, CacheInstruments? instruments = null, ILogger<BlockCache>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var shardCount = options.RamShardCount > 0
            ? options.RamShardCount
            : (int)BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(options.RamCapacityBytes / (4 * 1024 * 1024), 1, 16) + 1) / 2;
        // Idle block arrays kept for reuse: an eighth of the RAM tier, at most 64 MiB (a demotion queue's worth and more).
        var buffers = Buffers = new BlockBufferPool(Math.Min(options.RamCapacityBytes / 8, 64L << 20));
        _shards = new RamShard[shardCount];
        for (var i = 0; i < shardCount; i++)
        {
            _shards[i] = new RamShard(options.RamCapacityBytes / shardCount, options.SmallQueueFraction, this, buffers);
        }

        _shardMask = shardCount - 1;
        _instruments = instruments;
        if (options.FlashEnabled)
        {
            _flash = new FlashTier(options, Counters, instruments, logger ?? (ILogger)NullLogger.Instance, buffers);
        }

        instruments?.Observe(this);
    }

    public CacheCounters Counters { get; } = new();

    /// <summary>The arrays of blocks that left the cache, waiting for the next insert.</summary>
    internal BlockBufferPool Buffers { get; }

    /// <summary>Reads served by RAM or flash.</summary>
    public long Hits => Counters.Hits;

    /// <summary>Reads neither tier could serve.</summary>
    public long Misses => Counters.Misses;

    public int RamShardCount => _shards.Length;

    public long RamCapacityBytes => _shards[0].CapacityBytes * _shards.Length;

    public long RamBytes => SumShards(static s => s.Bytes);

    public int RamCount => (int)SumShards(static s => s.Count);

    public bool FlashEnabled => _flash is not null && !_flash.Disabled;

    /// <summary>The flash cache file, or null without a flash tier.</summary>
    public string? FlashFilePath => _flash?.FilePath;

    /// <summary>Bytes of one flash slot (header and data), 0 without a flash tier.</summary>
    public int FlashSlotBytes => _flash?.SlotBytes ?? 0;

    public int FlashCount => _flash?.Count ?? 0;

    public long FlashBytes => (long)FlashCount * (_flash?.BlockBytes ?? 0);

    /// <summary>Completes once every RAM eviction queued for flash before the call has been written or discarded.</summary>
    public Task DrainDemotionsAsync(CancellationToken cancellationToken) =>
        _flash?.DrainAsync(cancellationToken) ?? Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0 && _flash is not null)
        {
            await _flash.DisposeAsync();
        }
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    bool IRamEvictionSink.OnEvicted(RamEntry entry)
    {
        Interlocked.Increment(ref Counters.RamEvictionCount);
        return _flash is not null && _flash.TryDemote(entry.Key, entry.Lsn, entry.Data, entry.LengthBytes);
    }

    private RamShard ShardOf(in CacheKey key) => _shards[key.Mix() & _shardMask];

    private long SumShards(Func<RamShard, long> read)
    {
        long total = 0;
        foreach (var shard in _shards)
        {
            lock (shard.Lock)
            {
                total += read(shard);
            }
        }

        return total;
    }
}
