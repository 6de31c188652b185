using Converge.Grains.Cache;
using Converge.Tests.Extents;
using Xunit;

namespace Converge.Tests.Cache;

public sealed class BlockBufferPoolTests
{
    [Fact]
    public void ReturnedArray_IsHandedOutAgain_ForTheSameLengthOnly()
    {
        var pool = new BlockBufferPool(1 << 20);
        var first = pool.Rent(4096);
        Assert.Equal(4096, first.Length);
        pool.Return(first);
        Assert.Equal(4096, pool.IdleBytes);

        var other = pool.Rent(512);
        Assert.Equal(512, other.Length);
        Assert.Same(first, pool.Rent(4096));
        Assert.Equal(0, pool.IdleBytes);
    }

    [Fact]
    public void IdleArrays_StayWithinTheBound_AndThePastBoundOnesAreDropped()
    {
        var pool = new BlockBufferPool(3 * 4096);
        var arrays = Enumerable.Range(0, 5).Select(_ => pool.Rent(4096)).ToList();
        foreach (var array in arrays)
        {
            pool.Return(array);
        }

        Assert.Equal(3 * 4096, pool.IdleBytes);
        var again = Enumerable.Range(0, 5).Select(_ => pool.Rent(4096)).ToList();
        Assert.Equal(3, again.Count(a => arrays.Any(b => ReferenceEquals(a, b))));
        Assert.Equal(0, pool.IdleBytes);
    }

    [Fact]
    public void Cache_UnderSustainedInserts_ReusesTheArraysOfEvictedBlocks()
    {
        // A RAM tier of 64 blocks and no flash: every insert past the first 64 evicts one block.
        using var cache = new BlockCache(new BlockCacheOptions { RamCapacityBytes = 64 * 4096, RamShardCount = 1 });
        var volume = Guid.NewGuid();
        var block = new byte[4096];
        for (var i = 0; i < 64; i++)
        {
            cache.Put(volume, i, new Converge.Log.Lsn(1, (ulong)i + 1), block);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 64; i < 1064; i++)
        {
            cache.Put(volume, i, new Converge.Log.Lsn(1, (ulong)i + 1), block);
        }

        // 1,000 inserts of 4 KiB would allocate about 4 MB with an array each; reused arrays leave only the entries.
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1_000 * 4096 / 4, $"1,000 cache inserts allocated {allocated:N0} bytes");
        Assert.Equal(64, cache.RamCount);

        // Each insert took the array its predecessor's eviction left, and its own eviction left one: the cache's pool,
        // not the shared one, is where they go.
        Assert.Equal(4096, cache.Buffers.IdleBytes);
    }

    [Fact]
    public async Task DemotedBlocks_GiveTheirArraysBack_OnceWrittenToFlash()
    {
        using var directory = new TempDataDirectory();
        await using var cache = CacheTestData.WithFlash(directory.Path);
        var volume = Guid.NewGuid();
        CacheTestData.PutBlocks(cache, volume, 0, 48, new Converge.Log.Lsn(1, 1));
        await cache.DrainDemotionsAsync(CancellationToken.None);

        // 32 blocks were demoted from a 16-block RAM tier; their arrays came back (the ones not already taken by later
        // inserts), within the pool's bound (an eighth of RAM).
        Assert.InRange(cache.Buffers.IdleBytes, CacheTestData.BlockBytes, cache.Buffers.MaxIdleBytes);
        Assert.True(cache.FlashCount > 0, "nothing was demoted to flash");
    }
}
