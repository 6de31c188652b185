using System.Collections.Concurrent;
using System.Diagnostics;
using Converge.Grains.Cache;
using Converge.Log;
using Converge.Tests.Extents;
using Xunit;
using Xunit.Abstractions;
using static Converge.Tests.Cache.CacheTestData;

namespace Converge.Tests.Cache;

public sealed class ConcurrencyTests(ITestOutputHelper output) : IDisposable
{
    private const int Threads = 4;
    private const int Keys = 256;
    private readonly TempDataDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Each thread owns the blocks with block % Threads == its index and keeps a model of them (last LSN put, or
    /// invalidated); every thread reads every block. A read of any block must return bytes matching the LSN it reports;
    /// a read of an owned block must agree with the model: the last LSN put, or an older late fill put since then (a cache
    /// that has evicted the newer version everywhere cannot know to refuse the older one; readers that need the current
    /// version pass the LSN they expect, and those reads must only ever hit with exactly that LSN).
    /// </summary>
    [Fact]
    public async Task ManyThreads_PuttingReadingAndInvalidating_NeverSeeStaleOrTornBlocks()
    {
        var seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        await using var cache = new BlockCache(new BlockCacheOptions
        {
            RamCapacityBytes = 32 * BlockBytes,
            RamShardCount = 4,
            FlashDirectory = Path.Combine(_dir.Path, "cache"),
            FlashCapacityBytes = 64 * (BlockBytes + 64),
            DemotionQueueLength = 64,
        });

        var errors = new ConcurrentQueue<string>();
        var models = new Lsn?[Threads][];
        var lateFills = new Lsn?[Threads][];
        var start = new ManualResetEventSlim();
        var deadline = TimeSpan.FromSeconds(2);
        var workers = new Task[Threads];
        for (var t = 0; t < Threads; t++)
        {
            var owner = t;
            models[owner] = new Lsn?[Keys];
            lateFills[owner] = new Lsn?[Keys];
            workers[t] = Task.Factory.StartNew(
                () => Run(cache, owner, models[owner], lateFills[owner], new Random(seed + owner), start, deadline, errors),
                TaskCreationOptions.LongRunning);
        }

        start.Set();
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(30));
        await cache.DrainDemotionsAsync(Timeout());

        var buffer = new byte[BlockBytes];
        for (var block = 0; block < Keys; block++)
        {
            var model = models[block % Threads][block];
            var late = lateFills[block % Threads][block];
            if (cache.TryRead(VolumeA, block, buffer, out var lsn) && ((lsn != model && lsn != late) || !Matches(VolumeA, block, lsn, buffer)))
            {
                errors.Enqueue($"after the run block {block} read {lsn}, model {model?.ToString() ?? "invalidated"}");
            }
        }

        Assert.True(errors.IsEmpty, $"seed {seed}: {errors.Count} errors, first: {string.Join("; ", errors.Take(5))}");
        Assert.True(cache.RamBytes <= 32 * BlockBytes, $"RAM tier holds {cache.RamBytes} bytes");
        Assert.True(cache.FlashCount <= 64, $"flash tier maps {cache.FlashCount} blocks");
        var c = cache.Counters;
        output.WriteLine($"ram hits {c.RamHits}, flash hits {c.FlashHits}, misses {c.Misses}, demotions {c.Demotions}, dropped {c.DemotionsDropped}, promotions {c.Promotions}, flash evictions {c.FlashEvictions}");
        Assert.True(c.FlashHits > 0 && c.Promotions > 0 && c.Demotions > 0, "the run never exercised the flash tier");
        Assert.Equal(0, c.CorruptSlots);
    }

    private static void Run(BlockCache cache, int owner, Lsn?[] model, Lsn?[] lateFill, Random random, ManualResetEventSlim start, TimeSpan deadline, ConcurrentQueue<string> errors)
    {
        var buffer = new byte[BlockBytes];
        var sequence = 0UL;
        start.Wait();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 5_000_000 && clock.Elapsed < deadline && errors.Count < 10; i++)
        {
            var own = random.Next(Keys / Threads) * Threads + owner;
            var op = random.Next(100);
            if (op < 45)
            {
                var block = random.Next(Keys);
                if (cache.TryRead(VolumeA, block, buffer, out var lsn))
                {
                    if (!Matches(VolumeA, block, lsn, buffer))
                    {
                        errors.Enqueue($"block {block} read at {lsn} holds other bytes");
                    }

                    if (block % Threads == owner && model[block] != lsn && lateFill[block] != lsn)
                    {
                        errors.Enqueue($"owned block {block} read at {lsn}, model {model[block]?.ToString() ?? "invalidated"}");
                    }
                }
            }
            else if (op < 55 && model[own] is { } expected)
            {
                if (cache.TryRead(VolumeA, own, expected, buffer) && !Matches(VolumeA, own, expected, buffer))
                {
                    errors.Enqueue($"owned block {own} read at expected {expected} holds other bytes");
                }

                if (lateFill[own] is { } late && cache.TryRead(VolumeA, own, late, buffer) && !Matches(VolumeA, own, late, buffer))
                {
                    errors.Enqueue($"owned block {own} read at its late fill {late} holds other bytes");
                }
            }
            else if (op < 90)
            {
                var lsn = new Lsn(1, ++sequence);
                cache.Put(VolumeA, own, lsn, BlockFor(VolumeA, own, lsn));
                model[own] = lsn;
                lateFill[own] = null;
            }
            else if (op < 95 && model[own] is { Sequence: > 1 } current)
            {
                // A late fill of an older version (a read that raced a write) must not win.
                var older = new Lsn(1, current.Sequence - 1);
                cache.Put(VolumeA, own, older, BlockFor(VolumeA, own, older));
                lateFill[own] ??= older;
            }
            else
            {
                cache.Invalidate(VolumeA, own);
                model[own] = null;
                lateFill[own] = null;
            }
        }
    }
}
