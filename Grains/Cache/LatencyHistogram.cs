using System.Diagnostics;
using System.Numerics;

namespace Converge.Grains.Cache;

/// <summary>
/// A fixed set of log-linear buckets (four per power of two of nanoseconds, up to about 18 minutes) bumped with
/// <see cref="Interlocked"/>: recording allocates nothing and never blocks. Percentiles are read as the upper bound of
/// the bucket they fall in, so they are at most 19% high.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBucketBits = 2;
    private const int MaxPowerOfTwo = 40;
    private const int BucketCount = (MaxPowerOfTwo + 1) << SubBucketBits;

    private readonly long[] _buckets = new long[BucketCount];
    private long _count;

    public long Count => Volatile.Read(ref _count);

    /// <summary>Records the time since <paramref name="startTimestamp"/> (a <see cref="Stopwatch.GetTimestamp"/> value).</summary>
    public void RecordSince(long startTimestamp) => RecordNanoseconds(ToNanoseconds(Stopwatch.GetTimestamp() - startTimestamp));

    public void RecordNanoseconds(long nanoseconds)
    {
        Interlocked.Increment(ref _buckets[BucketOf(nanoseconds)]);
        Interlocked.Increment(ref _count);
    }

    /// <summary>The upper bound, in microseconds, of the bucket holding the <paramref name="quantile"/> sample; 0 when empty.</summary>
    public double PercentileMicroseconds(double quantile)
    {
        var total = Count;
        if (total == 0)
        {
            return 0;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(quantile * total));
        long seen = 0;
        for (var i = 0; i < BucketCount; i++)
        {
            seen += Volatile.Read(ref _buckets[i]);
            if (seen >= rank)
            {
                return UpperBoundNanoseconds(i) / 1000.0;
            }
        }

        return UpperBoundNanoseconds(BucketCount - 1) / 1000.0;
    }

    private static long ToNanoseconds(long ticks) => ticks <= 0 ? 0 : (long)(ticks * (1_000_000_000.0 / Stopwatch.Frequency));

    private static int BucketOf(long nanoseconds)
    {
        if (nanoseconds < (1L << SubBucketBits))
        {
            return (int)Math.Max(0, nanoseconds);
        }

        var power = Math.Min(MaxPowerOfTwo, 63 - BitOperations.LeadingZeroCount((ulong)nanoseconds));
        if (power == MaxPowerOfTwo)
        {
            return BucketCount - 1;
        }

        var sub = (int)((nanoseconds >> (power - SubBucketBits)) & ((1 << SubBucketBits) - 1));
        return (power << SubBucketBits) | sub;
    }

    private static long UpperBoundNanoseconds(int bucket)
    {
        var power = bucket >> SubBucketBits;
        var sub = bucket & ((1 << SubBucketBits) - 1);
        if (power < SubBucketBits)
        {
            return bucket + 1;
        }

        var step = 1L << (power - SubBucketBits);
        return (1L << power) + ((sub + 1) * step);
    }
}
