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
/// buffers, with one to three background full collections a second in each. This pool never trims; instead it keeps
/// at most <see cref="MaxIdleBytesPerSize"/> bytes of one size (one array at least), so no more than 352 MiB idle even if
/// every size were in use. The bound is per size because the sizes in use differ by workload: 1 MiB writes travel as
/// 64 KiB records, each in a 128 KiB array, 128 of them in flight at queue depth 8, while joined batches take a few
/// arrays of 8 or 16 MiB. A bound over all sizes together, tried first, filled with the large ones; a bound of a few
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

    private const int SizeCount = 11;

    private static readonly Lock Gate = new();
    private static readonly Stack<byte[]>[] Idle = Enumerable.Range(0, SizeCount).Select(_ => new Stack<byte[]>()).ToArray();
    private static long _idleBytes;

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
            if (Idle[size].TryPop(out var idle))
            {
                _idleBytes -= idle.Length;
                return idle;
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
                Idle[size].Push(array);
                _idleBytes += array.Length;
            }
        }
    }

    /// <summary>0 for up to 64 KiB, 1 for up to 128 KiB, and so on.</summary>
    private static int SizeIndex(int length) => BitOperations.Log2((uint)length - 1) + 1 - BitOperations.Log2(MinimumBytes);
}
