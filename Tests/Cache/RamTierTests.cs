using Converge.Grains.Cache;
using Converge.Log;
using Xunit;
using static Converge.Tests.Cache.CacheTestData;

namespace Converge.Tests.Cache;

public sealed class RamTierTests
{
    [Fact]
    public void TryRead_Misses_UntilPut_ThenReturnsTheBytesAndLsn()
    {
        using var cache = RamOnly();
        var buffer = new byte[BlockBytes];
        Assert.False(cache.TryRead(VolumeA, 7, new Lsn(1, 1), buffer));

        cache.Put(VolumeA, 7, new Lsn(1, 1), BlockFor(VolumeA, 7, new Lsn(1, 1)));

        Assert.True(cache.TryRead(VolumeA, 7, new Lsn(1, 1), buffer));
        Assert.True(Matches(VolumeA, 7, new Lsn(1, 1), buffer));
        Assert.True(cache.TryRead(VolumeA, 7, buffer, out var lsn));
        Assert.Equal(new Lsn(1, 1), lsn);
        Assert.False(cache.TryRead(VolumeB, 7, buffer, out _));
        Assert.Equal(2, cache.Hits);
        Assert.Equal(2, cache.Misses);
        Assert.Equal(BlockBytes, cache.RamBytes);
    }

    [Fact]
    public void Put_WithOlderLsn_NeverReplacesNewer_AndEqualLsnIsADuplicate()
    {
        using var cache = RamOnly();
        var buffer = new byte[BlockBytes];
        cache.Put(VolumeA, 3, new Lsn(2, 5), BlockFor(VolumeA, 3, new Lsn(2, 5)));
        cache.Put(VolumeA, 3, new Lsn(2, 4), BlockFor(VolumeA, 3, new Lsn(2, 4)));
        cache.Put(VolumeA, 3, new Lsn(1, 9), BlockFor(VolumeA, 3, new Lsn(1, 9)));
        cache.Put(VolumeA, 3, new Lsn(2, 5), new byte[BlockBytes]);

        Assert.True(cache.TryRead(VolumeA, 3, buffer, out var lsn));
        Assert.Equal(new Lsn(2, 5), lsn);
        Assert.True(Matches(VolumeA, 3, new Lsn(2, 5), buffer));

        cache.Put(VolumeA, 3, new Lsn(3, 1), BlockFor(VolumeA, 3, new Lsn(3, 1)));
        Assert.True(cache.TryRead(VolumeA, 3, new Lsn(3, 1), buffer));
        Assert.True(Matches(VolumeA, 3, new Lsn(3, 1), buffer));
        Assert.Equal(1, cache.RamCount);
    }

    [Fact]
    public void TryRead_WithADifferentExpectedLsn_IsAMiss_AndLeavesTheDestinationUnchanged()
    {
        using var cache = RamOnly();
        cache.Put(VolumeA, 1, new Lsn(1, 2), BlockFor(VolumeA, 1, new Lsn(1, 2)));
        var buffer = new byte[BlockBytes];
        Array.Fill(buffer, (byte)0xAB);

        Assert.False(cache.TryRead(VolumeA, 1, new Lsn(1, 1), buffer));
        Assert.False(cache.TryRead(VolumeA, 1, new Lsn(1, 3), buffer));
        Assert.False(cache.TryRead(VolumeA, 1, new Lsn(1, 2), new byte[BlockBytes / 2]));

        Assert.All(buffer, b => Assert.Equal(0xAB, b));
        Assert.Equal(0, cache.Hits);
        Assert.Equal(3, cache.Misses);
    }

    [Fact]
    public void Invalidate_And_DropVolume_ForgetOnlyWhatTheyName()
    {
        using var cache = RamOnly();
        PutBlocks(cache, VolumeA, 0, 10, new Lsn(1, 1));
        PutBlocks(cache, VolumeB, 0, 10, new Lsn(1, 1));
        var buffer = new byte[BlockBytes];

        cache.Invalidate(VolumeA, 4);
        Assert.False(cache.TryRead(VolumeA, 4, buffer, out _));
        Assert.True(cache.TryRead(VolumeA, 5, buffer, out _));

        cache.DropVolume(VolumeA);
        for (var b = 0; b < 10; b++)
        {
            Assert.False(cache.TryRead(VolumeA, b, buffer, out _));
            Assert.True(cache.TryRead(VolumeB, b, new Lsn(1, 1), buffer));
        }

        Assert.Equal(10 * BlockBytes, cache.RamBytes);
    }

    [Fact]
    public void Ram_StaysWithinItsByteCapacity_WithMixedBlockSizes()
    {
        const long capacity = 256 * 1024;
        using var cache = RamOnly(capacity, shards: 4);
        int[] sizes = [512, 4096, 16384, 65536];
        var random = new Random(1234);
        for (var i = 0; i < 2000; i++)
        {
            var size = sizes[random.Next(sizes.Length)];
            cache.Put(VolumeA, i, new Lsn(1, (ulong)i + 1), BlockFor(VolumeA, i, new Lsn(1, (ulong)i + 1), size));
            Assert.True(cache.RamBytes <= capacity, $"RAM tier holds {cache.RamBytes} bytes after put {i}, capacity {capacity}");
        }

        Assert.True(cache.Counters.RamEvictions > 1000, $"only {cache.Counters.RamEvictions} evictions");
        Assert.True(cache.RamBytes > capacity / 2, $"RAM tier holds only {cache.RamBytes} bytes: eviction is too eager");
    }

    [Fact]
    public void HotSet_SurvivesALargeOneTimeScan()
    {
        // 256 blocks of RAM; a hot set of 64 blocks read a few times, then a scan of 40x the cache read once.
        using var cache = RamOnly(256 * BlockBytes);
        var buffer = new byte[BlockBytes];
        var lsn = new Lsn(1, 1);
        for (var round = 0; round < 4; round++)
        {
            for (var b = 0; b < 64; b++)
            {
                if (!cache.TryRead(VolumeA, b, lsn, buffer))
                {
                    cache.Put(VolumeA, b, lsn, BlockFor(VolumeA, b, lsn));
                }
            }
        }

        for (var b = 0; b < 10_240; b++)
        {
            Assert.False(cache.TryRead(VolumeB, b, lsn, buffer));
            cache.Put(VolumeB, b, lsn, BlockFor(VolumeB, b, lsn));
        }

        var hits = 0;
        for (var b = 0; b < 64; b++)
        {
            if (cache.TryRead(VolumeA, b, lsn, buffer) && Matches(VolumeA, b, lsn, buffer))
            {
                hits++;
            }
        }

        // Plain FIFO or LRU would have lost all 64: the scan alone is 40 times the capacity.
        Assert.Equal(1.0, hits / 64.0);
        Assert.True(cache.Counters.RamEvictions >= 10_240 - 256, $"the scan evicted only {cache.Counters.RamEvictions} blocks");
    }

    [Fact]
    public void Options_RejectBadSizes_WithTheSettingNamed()
    {
        var error = Assert.Throws<ArgumentException>(() => new BlockCache(new BlockCacheOptions { RamCapacityBytes = 1000 }));
        Assert.Equal("RamCapacityBytes", error.ParamName);
        error = Assert.Throws<ArgumentException>(() => new BlockCache(new BlockCacheOptions { RamShardCount = 3 }));
        Assert.Equal("RamShardCount", error.ParamName);
        error = Assert.Throws<ArgumentException>(() => new BlockCache(new BlockCacheOptions { FlashDirectory = "/tmp", FlashCapacityBytes = 4096 }));
        Assert.Equal("FlashCapacityBytes", error.ParamName);
    }
}
