using Converge.Grains.Cache;
using Converge.Grains.Io;
using Converge.Log;
using Converge.Tests.Extents;
using Xunit;
using static Converge.Tests.Cache.CacheTestData;

namespace Converge.Tests.Cache;

public sealed class FlashTierTests : IDisposable
{
    private static readonly Lsn One = new(1, 1);
    private readonly TempDataDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string CacheDir => Path.Combine(_dir.Path, "cache");

    [Fact]
    public async Task Eviction_DemotesToFlash_AndAFlashHit_PromotesBackToRam()
    {
        await using var cache = WithFlash(CacheDir);
        PutBlocks(cache, VolumeA, 0, 48, One);
        await cache.DrainDemotionsAsync(Timeout());

        // Nothing was read, so blocks leave RAM in insertion order: 0..31 went to flash, 32..47 are in RAM.
        Assert.Equal(32, cache.Counters.RamEvictions);
        Assert.Equal(32, cache.Counters.Demotions);
        Assert.Equal(32, cache.FlashCount);
        Assert.Equal(16, cache.RamCount);
        Assert.Equal(32, cache.Counters.FlashWrites);

        var buffer = new byte[BlockBytes];
        Assert.True(cache.TryRead(VolumeA, 5, One, buffer));
        Assert.True(Matches(VolumeA, 5, One, buffer));
        Assert.Equal(1, cache.Counters.FlashHits);
        Assert.Equal(1, cache.Counters.Promotions);

        var ramHits = cache.Counters.RamHits;
        Array.Clear(buffer);
        Assert.True(cache.TryRead(VolumeA, 5, One, buffer));
        Assert.True(Matches(VolumeA, 5, One, buffer));
        Assert.Equal(ramHits + 1, cache.Counters.RamHits);
        Assert.Equal(1, cache.Counters.FlashHits);

        // A flash copy is proven by its LSN like a RAM one.
        Assert.False(cache.TryRead(VolumeA, 6, new Lsn(1, 2), buffer));
        Assert.True(cache.TryRead(VolumeA, 6, buffer, out var lsn));
        Assert.Equal(One, lsn);
    }

    [Fact]
    public async Task Put_WithOlderLsn_NeverReplacesNewerHeldOnFlash_AndNewerSupersedesIt()
    {
        await using var cache = WithFlash(CacheDir);
        var newer = new Lsn(2, 7);
        PutBlocks(cache, VolumeA, 0, 48, newer);
        await cache.DrainDemotionsAsync(Timeout());
        var buffer = new byte[BlockBytes];

        cache.Put(VolumeA, 3, new Lsn(2, 6), BlockFor(VolumeA, 3, new Lsn(2, 6)));
        Assert.True(cache.TryRead(VolumeA, 3, buffer, out var lsn));
        Assert.Equal(newer, lsn);
        Assert.True(Matches(VolumeA, 3, newer, buffer));

        var newest = new Lsn(3, 1);
        cache.Put(VolumeA, 4, newest, BlockFor(VolumeA, 4, newest));
        Assert.False(cache.TryRead(VolumeA, 4, newer, buffer));
        Assert.True(cache.TryRead(VolumeA, 4, buffer, out lsn));
        Assert.Equal(newest, lsn);
        Assert.True(Matches(VolumeA, 4, newest, buffer));
    }

    [Theory]
    [InlineData(30)] // block index in the header
    [InlineData(61)] // header CRC
    [InlineData(FlashSlotOffsets.Data + 100)]
    [InlineData(FlashSlotOffsets.Data + BlockBytes - 1)]
    public async Task AFlippedBitInTheFlashFile_IsDetected_AndNeverReturned(int offsetInSlot)
    {
        await using var cache = WithFlash(CacheDir);
        PutBlocks(cache, VolumeA, 0, 48, One);
        await cache.DrainDemotionsAsync(Timeout());
        var written = cache.Counters.FlashWrites;
        Assert.Equal(32, written);

        using (var file = PosixFileSystem.Instance.Open(cache.FlashFilePath!, create: false))
        {
            var one = new byte[1];
            for (var slot = 0L; slot < written; slot++)
            {
                var at = slot * cache.FlashSlotBytes + offsetInSlot;
                Assert.Equal(1, file.Read(at, one));
                one[0] ^= 0x10;
                file.Write(at, one);
            }
        }

        var buffer = new byte[BlockBytes];
        for (var b = 0; b < 32; b++)
        {
            Array.Fill(buffer, (byte)0xCD);
            Assert.False(cache.TryRead(VolumeA, b, One, buffer), $"block {b} was served from a corrupted slot");
            Assert.All(buffer, x => Assert.Equal(0xCD, x));
        }

        Assert.Equal(32, cache.Counters.CorruptSlots);
        Assert.Equal(0, cache.FlashCount);
        Assert.Equal(0, cache.Counters.FlashHits);

        // The slots were dropped: reading again is a plain miss, not another corruption.
        Assert.False(cache.TryRead(VolumeA, 0, buffer, out _));
        Assert.Equal(32, cache.Counters.CorruptSlots);
    }

    [Fact]
    public async Task DropVolume_And_Invalidate_RemoveBlocksFromBothTiers()
    {
        await using var cache = WithFlash(CacheDir);
        PutBlocks(cache, VolumeA, 0, 24, One);
        PutBlocks(cache, VolumeB, 0, 24, One);
        await cache.DrainDemotionsAsync(Timeout());
        Assert.Equal(32, cache.FlashCount);
        var buffer = new byte[BlockBytes];

        cache.Invalidate(VolumeB, 0); // on flash
        cache.Invalidate(VolumeB, 23); // in RAM
        Assert.False(cache.TryRead(VolumeB, 0, buffer, out _));
        Assert.False(cache.TryRead(VolumeB, 23, buffer, out _));

        cache.DropVolume(VolumeA);
        for (var b = 0; b < 24; b++)
        {
            Assert.False(cache.TryRead(VolumeA, b, buffer, out _), $"block {b} of a dropped volume was served");
        }

        Assert.Equal(7, cache.FlashCount); // of B's demoted blocks 0..7, block 0 was invalidated
        for (var b = 1; b < 23; b++)
        {
            Assert.True(cache.TryRead(VolumeB, b, One, buffer), $"block {b} of the other volume was lost");
            Assert.True(Matches(VolumeB, b, One, buffer));
        }
    }

    [Fact]
    public async Task AFullDemotionQueue_DropsEvictions_RatherThanBlockingPut()
    {
        var fileSystem = new FaultyFileSystem(PosixFileSystem.Instance);
        await using var cache = WithFlash(CacheDir, demotionQueueLength: 1, fileSystem: fileSystem);
        using var hold = fileSystem.Hold("*.dat", FaultPoint.Write, TimeSpan.FromSeconds(30));

        PutBlocks(cache, VolumeA, 0, 17, One);
        Assert.Equal("flash.dat", Path.GetFileName(await hold.Reached.WaitAsync(Timeout())));

        // The writer is stuck in its first write: one more demotion fits the queue, the rest are dropped at once.
        PutBlocks(cache, VolumeA, 17, 30, One);
        Assert.Equal(31, cache.Counters.RamEvictions);
        Assert.Equal(2, cache.Counters.Demotions);
        Assert.Equal(29, cache.Counters.DemotionsDropped);

        hold.Release();
        await cache.DrainDemotionsAsync(Timeout());
        Assert.Equal(2, cache.FlashCount);
        var buffer = new byte[BlockBytes];
        Assert.True(cache.TryRead(VolumeA, 0, One, buffer));
        Assert.True(cache.TryRead(VolumeA, 1, One, buffer));
        Assert.False(cache.TryRead(VolumeA, 2, One, buffer));
    }

    [Fact]
    public async Task Restart_StartsCold_IgnoringWhatTheFileHeld()
    {
        await using (var first = WithFlash(CacheDir))
        {
            PutBlocks(first, VolumeA, 0, 48, One);
            await first.DrainDemotionsAsync(Timeout());
            Assert.Equal(32, first.FlashCount);
        }

        await using var second = WithFlash(CacheDir);
        Assert.Equal(0, second.FlashCount);
        Assert.False(second.TryRead(VolumeA, 0, One, new byte[BlockBytes]));
        Assert.Equal(1024 * 1024 / second.FlashSlotBytes * (long)second.FlashSlotBytes, new FileInfo(second.FlashFilePath!).Length);
    }
}

internal static class FlashSlotOffsets
{
    public const int Data = 64;
}
