using System.Diagnostics;
using Converge.Grains.Log;
using Xunit;

namespace Converge.Tests.Log;

/// <summary>The log bandwidth cap, on a clock the test moves by hand.</summary>
public sealed class TokenBucketTests
{
    private long _now = 1_000_000;

    [Fact]
    public void TheBurstIsFree_ThenEachByteCostsItsShareOfASecond()
    {
        var bucket = new TokenBucket(bytesPerSecond: 1_000_000, burstBytes: 100_000, () => _now);

        Assert.Equal(TimeSpan.Zero, bucket.Take(100_000));
        Assert.Equal(0.5, bucket.Take(500_000).TotalSeconds, precision: 6);

        // Waiting out the debt leaves an empty bucket; a long pause refills it only up to the burst.
        Advance(0.5);
        Assert.Equal(0.15, bucket.Take(150_000).TotalSeconds, precision: 6);
        Advance(10);
        Assert.Equal(TimeSpan.Zero, bucket.Take(100_000));
        Assert.True(bucket.Take(1) > TimeSpan.Zero);
    }

    [Fact]
    public void OverManyTakes_TheRateHolds()
    {
        var bucket = new TokenBucket(bytesPerSecond: 4_000_000, burstBytes: 256 * 1024, () => _now);
        var waited = TimeSpan.Zero;
        long taken = 0;
        for (var i = 0; i < 1000; i++)
        {
            var wait = bucket.Take(40_000);
            taken += 40_000;
            waited += wait;
            Advance(wait.TotalSeconds);
        }

        // 40 MB at 4 MB/s: ten seconds, less the burst that was there at the start.
        Assert.Equal((taken - (256 * 1024)) / 4_000_000.0, waited.TotalSeconds, precision: 3);
    }

    [Fact]
    public void ZeroOrNegativeRates_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(1, 0));
    }

    private void Advance(double seconds) => _now += (long)(seconds * Stopwatch.Frequency);
}
