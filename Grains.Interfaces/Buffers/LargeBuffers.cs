using System.Buffers;
using System.Numerics;

namespace Converge.Buffers;

/// <summary>
/// The pool for the data path's large per-I/O buffers (encoded records, data-channel frame bodies, destage batches,
/// log batches): arrays of 64 KiB to 64 MiB in power-of-two sizes, kept when returned up to a bound. Smaller requests go
/// to <see cref="ArrayPool{T}.Shared"/>. Thread-safe.
/// </summary>
/// <remarks>
/// Why not the shared pool for these: it keeps a handful of arrays per size and CPU, and trims them at every full
/// collection. Arrays of 85,000 bytes and more live on the large object heap, whose allocations start full collections;
/// so once a burst of 1 MiB writes outruns the shared pool, its misses cause collections, the collections trim the pool,
/// and the trimmed pool misses more. Measured with <c>dotnet-trace</c> under 1 MiB writes at queue depth 8: 88% of a
/// compute silo's allocations were records missing the shared pool, and a storage silo's were frame bodies and destage
/// buffers, with one to three background full collections a second in each. This pool does not trim at collections;
/// it keeps at most <see cref="MaxIdleBytesPerSize"/> bytes of one size (one array at least), so no more than 352 MiB idle even if
/// every size were in use; and every <see cref="TrimInterval"/> it leaves to the collector the arrays of each size that
/// none of that interval's rents needed (<see cref="Trim"/>), so what a burst left behind is gone a minute or two after it.
/// The bound is per size because the sizes in use differ by workload: 1 MiB writes once travelled as
/// 64 KiB records, each in a 128 KiB array, 128 of them in flight at queue depth 8 (now as 1 MiB records in 2 MiB arrays),
/// while joined batches take a few arrays of 8 or 16 MiB. A bound over all sizes together, tried first, filled with the large ones; a bound of a few
/// arrays per size (the shared pool's) dropped most of the small ones.
/// </remarks>
public static class LargeBuffers
{
    /// <summary>The smallest request served from this pool.</summary>
    public const int MinimumBytes = 64 * 1024;

    /// <summary>The largest array kept (64 MiB); larger requests are allocated and left to the collector.</summary>
    public const int MaximumBytes = MinimumBytes << (SizeCount - 1);

    /// <summary>Idle bytes kept at most of any one size (but always one array).</summary>
    public const int MaxIdleBytesPerSize = 32 << 20;

    /// <summary>How often idle arrays no rent needed are let go.</summary>
    public static readonly TimeSpan TrimInterval = TimeSpan.FromSeconds(30);

    private const int SizeCount = 11;

    private static readonly Lock Gate = new();

    /// <summary>Idle arrays of each size, the most recently returned last (rents take from the end, trims from the start).</summary>
    private static readonly List<byte[]>[] Idle = Enumerable.Range(0, SizeCount).Select(_ => new List<byte[]>()).ToArray();

    /// <summary>The fewest idle arrays of each size since the last trim: that many were not needed in the interval.</summary>
    private static readonly int[] LowWater = new int[SizeCount];

    private static readonly Timer Trimmer = new(static _ => Trim(), null, TrimInterval, TrimInterval);
    private static long _idleBytes;
    private static long _trims;
    private static long _trimmedBytes;

    /// <summary>Bytes held in idle arrays now.</summary>
    public static long IdleBytes
    {
        get
        {
            lock (Gate)
            {
                return _idleBytes;
            }
        }
    }

    /// <summary>Bytes let go by trims so far.</summary>
    public static long TrimmedBytes
    {
        get
        {
            lock (Gate)
            {
                return _trimmedBytes;
            }
        }
    }

    /// <summary>Trims done so far, by the timer or by callers.</summary>
    public static long Trims
    {
        get
        {
            lock (Gate)
            {
                return _trims;
            }
        }
    }

    /// <summary>
    /// Lets go of the idle arrays that no rent needed since the previous trim (of each size, as many as were idle
    /// throughout, the least recently returned first) and returns their bytes. Runs every <see cref="TrimInterval"/>.
    /// </summary>
    public static long Trim()
    {
        long released = 0;
        lock (Gate)
        {
            for (var size = 0; size < SizeCount; size++)
            {
                var idle = Idle[size];
                var unneeded = Math.Min(LowWater[size], idle.Count);
                for (var i = 0; i < unneeded; i++)
                {
                    released += idle[i].Length;
                }

                idle.RemoveRange(0, unneeded);
                LowWater[size] = idle.Count;
            }

            _idleBytes -= released;
            _trimmedBytes += released;
            _trims++;
        }

        return released;
    }

    /// <summary>An array of at least <paramref name="minimumLength"/> bytes, contents undefined; give it back with <see cref="Return"/>.</summary>
    public static byte[] Rent(int minimumLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minimumLength);
        if (minimumLength < MinimumBytes)
        {
            return ArrayPool<byte>.Shared.Rent(minimumLength);
        }

        if (minimumLength > MaximumBytes)
        {
            return GC.AllocateUninitializedArray<byte>(minimumLength);
        }

        var size = SizeIndex(minimumLength);
        lock (Gate)
        {
            var idle = Idle[size];
            if (idle.Count > 0)
            {
                var array = idle[^1];
                idle.RemoveAt(idle.Count - 1);
                LowWater[size] = Math.Min(LowWater[size], idle.Count);
                _idleBytes -= array.Length;
                return array;
            }
        }

        return GC.AllocateUninitializedArray<byte>(MinimumBytes << size);
    }

    /// <summary>
    /// Takes back an array from <see cref="Rent"/> that nothing refers to any more. Arrays of a size this pool does not
    /// hand out, and arrays past its bounds, are left to the collector.
    /// </summary>
    public static void Return(byte[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.Length < MinimumBytes)
        {
            if (array.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(array);
            }

            return;
        }

        if (array.Length > MaximumBytes || !BitOperations.IsPow2(array.Length))
        {
            return;
        }

        var size = SizeIndex(array.Length);
        lock (Gate)
        {
            if (Idle[size].Count < Math.Max(1, MaxIdleBytesPerSize / array.Length))
            {
                Idle[size].Add(array);
                _idleBytes += array.Length;
            }
        }
    }

    /// <summary>0 for up to 64 KiB, 1 for up to 128 KiB, and so on.</summary>
    private static int SizeIndex(int length) => BitOperations.Log2((uint)length - 1) + 1 - BitOperations.Log2(MinimumBytes);
}
