using Converge.Buffers;
using Xunit;

namespace Converge.Tests.Buffers;

/// <summary>
/// The pool is process-wide and other tests use it at the same time, so these use sizes the data path's unit tests do
/// not, and assert only what concurrent use cannot change.
/// </summary>
public sealed class LargeBuffersTests
{
    [Fact]
    public void Sizes_AreRoundedToPowersOfTwo_FromTheSmallestPooledSize()
    {
        Assert.Equal(LargeBuffers.MinimumBytes, LargeBuffers.Rent(LargeBuffers.MinimumBytes).Length);
        Assert.Equal(2 * LargeBuffers.MinimumBytes, LargeBuffers.Rent(LargeBuffers.MinimumBytes + 1).Length);
        Assert.Equal(1 << 21, LargeBuffers.Rent((1 << 20) + 84).Length);

        // Below the pooled sizes the shared array pool serves (and takes back) the request.
        var small = LargeBuffers.Rent(4096);
        Assert.True(small.Length >= 4096);
        LargeBuffers.Return(small);
        Assert.Throws<ArgumentOutOfRangeException>(() => LargeBuffers.Rent(-1));
    }

    [Fact]
    public void ReturnedArray_IsHandedOutAgain()
    {
        var first = LargeBuffers.Rent(40 << 20);
        Assert.Equal(64 << 20, first.Length);
        LargeBuffers.Return(first);
        Assert.Same(first, LargeBuffers.Rent(33 << 20));
    }

    [Fact]
    public void ArraysOutsideThePooledSizes_AreNotKept()
    {
        var huge = LargeBuffers.Rent(LargeBuffers.MaximumBytes + 1);
        Assert.Equal(LargeBuffers.MaximumBytes + 1, huge.Length);
        var odd = new byte[3 * LargeBuffers.MinimumBytes];
        var idle = LargeBuffers.IdleBytes;
        LargeBuffers.Return(huge);
        LargeBuffers.Return(odd);
        Assert.NotSame(huge, LargeBuffers.Rent(LargeBuffers.MaximumBytes + 1));
        Assert.True(LargeBuffers.IdleBytes <= idle || LargeBuffers.IdleBytes - idle < odd.Length, "an array of no pooled size was kept");
    }

    [Fact]
    public void IdleArraysOfOneSize_StayWithinTheBound()
    {
        // 4 MiB arrays: 32 MiB of one size is eight of them.
        const int size = 3 << 20;
        var bound = LargeBuffers.MaxIdleBytesPerSize / (4 << 20);
        var arrays = Enumerable.Range(0, bound + 6).Select(_ => LargeBuffers.Rent(size)).ToList();
        foreach (var array in arrays)
        {
            LargeBuffers.Return(array);
        }

        var again = Enumerable.Range(0, arrays.Count).Select(_ => LargeBuffers.Rent(size)).ToList();
        var reused = again.Count(a => arrays.Any(b => ReferenceEquals(a, b)));
        Assert.InRange(reused, 1, bound);
    }

    [Fact]
    public void Trim_LetsGoOfTheArraysNoRentNeededSinceThePreviousTrim()
    {
        // 16 MiB arrays (two kept idle at most); the pool's own timer may trim in between, and then the case runs again.
        const int size = 9 << 20;
        for (var attempt = 1; ; attempt++)
        {
            var trims = LargeBuffers.Trims;
            var a = LargeBuffers.Rent(size);
            var b = LargeBuffers.Rent(size);
            LargeBuffers.Return(a);
            LargeBuffers.Return(b);
            LargeBuffers.Trim(); // both came back during this interval: kept
            var needed = LargeBuffers.Rent(size);
            LargeBuffers.Return(needed);
            var released = LargeBuffers.Trim(); // one of them stayed idle through the interval: let go
            var x = LargeBuffers.Rent(size);
            var y = LargeBuffers.Rent(size);
            LargeBuffers.Return(x);
            LargeBuffers.Return(y);
            if (LargeBuffers.Trims != trims + 2 && attempt < 3)
            {
                continue;
            }

            Assert.Contains(needed, new[] { a, b });
            Assert.True(released >= 16 << 20, $"released {released} bytes");
            Assert.Equal(1, new[] { x, y }.Count(r => ReferenceEquals(r, a) || ReferenceEquals(r, b)));
            Assert.True(ReferenceEquals(x, needed), "the array rented in the interval is the one kept");
            return;
        }
    }
}
