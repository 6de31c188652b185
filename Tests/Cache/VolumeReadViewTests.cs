using System.Collections.Concurrent;
using System.Diagnostics;
using Converge.DataPath;
using Converge.Grains.Controller;
using Converge.Log;
using Xunit;
using static Converge.Tests.Cache.CacheTestData;

namespace Converge.Tests.Cache;

/// <summary>
/// The NBD gateway's read fast path: it answers only what the controller's own first step would take from RAM (a dirty
/// block at exactly its LSN, a clean block at any), only while a publication is current and its lease holds, and a
/// publication can be displaced only by a newer epoch and revoked only by its owner.
/// </summary>
public sealed class VolumeReadViewTests
{
    private const long VolumeBytes = 512 * BlockBytes;
    private static readonly SegmentRecord Segment = new(Guid.NewGuid(), "storage-1", "storage-2", 3, Sealed: false);

    private readonly ConcurrentDictionary<long, VolumeControllerGrain.DirtyEntry> _dirty = new();
    private readonly object _owner = new();

    [Fact]
    public void NothingIsServed_UntilAControllerPublishes()
    {
        using var cache = RamOnly();
        PutBlocks(cache, VolumeA, 0, 4, new Lsn(3, 1));
        var view = new VolumeReadView(cache);

        Assert.False(view.TryRead(0, new byte[4 * BlockBytes]));

        view.Publish(Publication(_owner, epoch: 3));
        var buffer = new byte[4 * BlockBytes];
        Assert.True(view.TryRead(0, buffer));
        for (var b = 0; b < 4; b++)
        {
            Assert.True(Matches(VolumeA, b, new Lsn(3, 1), buffer.AsSpan(b * BlockBytes, BlockBytes)));
        }

        Assert.Equal(1, cache.Counters.DirectReads);
        Assert.Equal(4, cache.Counters.RamHits);
    }

    [Fact]
    public void ADirtyBlock_IsServedOnlyAtItsEntrysLsn_AndAZeroEntryNever()
    {
        using var cache = RamOnly();
        var view = new VolumeReadView(cache);
        view.Publish(Publication(_owner, epoch: 3));
        var buffer = new byte[BlockBytes];
        cache.Put(VolumeA, 5, new Lsn(3, 7), BlockFor(VolumeA, 5, new Lsn(3, 7)));

        _dirty[5] = new VolumeControllerGrain.DirtyEntry(new Lsn(3, 8), Segment, Zero: false);
        Assert.False(view.TryRead(5 * BlockBytes, buffer));

        cache.Put(VolumeA, 5, new Lsn(3, 8), BlockFor(VolumeA, 5, new Lsn(3, 8)));
        Assert.True(view.TryRead(5 * BlockBytes, buffer));
        Assert.True(Matches(VolumeA, 5, new Lsn(3, 8), buffer));

        _dirty[5] = new VolumeControllerGrain.DirtyEntry(new Lsn(3, 8), Segment, Zero: true);
        Assert.False(view.TryRead(5 * BlockBytes, buffer));

        // Destaged and pruned: a clean block is served at whatever version the cache holds.
        _dirty.TryRemove(5, out _);
        Assert.True(view.TryRead(5 * BlockBytes, buffer));
        Assert.True(Matches(VolumeA, 5, new Lsn(3, 8), buffer));
    }

    [Fact]
    public void OneMissingBlock_SendsTheWholeReadToTheController_AndNoMissIsCounted()
    {
        using var cache = RamOnly();
        PutBlocks(cache, VolumeA, 0, 3, new Lsn(3, 1));
        var view = new VolumeReadView(cache);
        view.Publish(Publication(_owner, epoch: 3));

        Assert.False(view.TryRead(0, new byte[4 * BlockBytes]));

        Assert.Equal(0, cache.Counters.RamHits);
        Assert.Equal(0, cache.Counters.RamMisses);
        Assert.Equal(0, cache.Counters.Misses);
        Assert.Equal(0, cache.Counters.DirectReads);
    }

    [Theory]
    [InlineData(100, BlockBytes)]
    [InlineData(0, 100)]
    [InlineData(0, 0)]
    [InlineData(-BlockBytes, BlockBytes)]
    [InlineData(VolumeBytes, BlockBytes)]
    [InlineData(VolumeBytes - BlockBytes, 2 * BlockBytes)]
    [InlineData(0, VolumeReadView.MaxReadBytes + BlockBytes)]
    public void PartialEmptyOrOutOfRangeReads_GoToTheController(long offset, int length)
    {
        using var cache = RamOnly(ramBytes: 4 * 1024 * 1024);
        PutBlocks(cache, VolumeA, 0, 512, new Lsn(3, 1));
        var view = new VolumeReadView(cache);
        view.Publish(Publication(_owner, epoch: 3));

        Assert.False(view.TryRead(offset, new byte[length]));
        Assert.True(view.TryRead(VolumeBytes - BlockBytes, new byte[BlockBytes]));
    }

    [Fact]
    public void ALapsedLease_StopsTheFastPath_UntilRenewed()
    {
        using var cache = RamOnly();
        PutBlocks(cache, VolumeA, 0, 1, new Lsn(3, 1));
        var view = new VolumeReadView(cache);
        var publication = Publication(_owner, epoch: 3, serveUntilTicks: Stopwatch.GetTimestamp() - 1);
        view.Publish(publication);

        Assert.False(view.TryRead(0, new byte[BlockBytes]));

        Volatile.Write(ref publication.ServeUntilTicks, Stopwatch.GetTimestamp() + Stopwatch.Frequency);
        Assert.True(view.TryRead(0, new byte[BlockBytes]));
    }

    [Fact]
    public void AnOlderEpoch_NeverDisplacesANewer_AndOnlyTheOwnerRevokes()
    {
        using var cache = RamOnly();
        PutBlocks(cache, VolumeA, 0, 1, new Lsn(4, 1));
        var view = new VolumeReadView(cache);
        var newer = new object();
        view.Publish(Publication(newer, epoch: 4));

        view.Publish(Publication(_owner, epoch: 3));
        view.Revoke(_owner);
        Assert.True(view.IsPublished);
        Assert.True(view.TryRead(0, new byte[BlockBytes]));

        view.Revoke(newer);
        Assert.False(view.IsPublished);
        Assert.False(view.TryRead(0, new byte[BlockBytes]));
    }

    [Fact]
    public void ANewerAttachment_RevokesAnOlderPublication_WhoeverOwnsIt()
    {
        using var cache = RamOnly();
        PutBlocks(cache, VolumeA, 0, 1, new Lsn(4, 1));
        var view = new VolumeReadView(cache);
        view.Publish(Publication(_owner, epoch: 4));

        view.RevokeOlderThan(4);
        Assert.True(view.TryRead(0, new byte[BlockBytes]));

        view.RevokeOlderThan(5);
        Assert.False(view.IsPublished);
        Assert.False(view.TryRead(0, new byte[BlockBytes]));
    }

    private VolumeReadView.Publication Publication(object owner, ulong epoch, long? serveUntilTicks = null) =>
        new(owner, epoch, VolumeA, BlockBytes, VolumeBytes, _dirty, serveUntilTicks ?? Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency));
}
