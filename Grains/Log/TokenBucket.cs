using System.Diagnostics;

namespace Converge.Grains.Log;

/// <summary>
/// Caps a byte rate: tokens (bytes) refill at <c>bytesPerSecond</c> up to <c>burstBytes</c>; taking more than is there
/// leaves a debt that the caller waits out. Used by the log writer to cap one storage silo's log bandwidth, so a
/// storage-bound cluster can be shown on one machine (<c>--log-bandwidth-mb</c>). Not thread-safe: one writer thread.
/// </summary>
public sealed class TokenBucket
{
    private readonly double _bytesPerTick;
    private readonly long _burstBytes;
    private readonly Func<long> _clock;
    private double _tokens;
    private long _refilledAt;

    /// <param name="clock">Stopwatch ticks; the default is <see cref="Stopwatch.GetTimestamp"/>.</param>
    public TokenBucket(long bytesPerSecond, long burstBytes, Func<long>? clock = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytesPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(burstBytes, 1);
        _bytesPerTick = bytesPerSecond / (double)Stopwatch.Frequency;
        _burstBytes = burstBytes;
        _clock = clock ?? Stopwatch.GetTimestamp;
        _tokens = burstBytes;
        _refilledAt = _clock();
    }

    /// <summary>Takes <paramref name="bytes"/> and returns how long to wait before using them (zero when the bucket held enough).</summary>
    public TimeSpan Take(long bytes)
    {
        var now = _clock();
        _tokens = Math.Min(_burstBytes, _tokens + ((now - _refilledAt) * _bytesPerTick));
        _refilledAt = now;
        _tokens -= bytes;
        return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / _bytesPerTick / Stopwatch.Frequency);
    }
}
