namespace Converge.Grains.Cache;

/// <summary>
/// The buffers of cached blocks, kept for the next block instead of left to the garbage collector. Thread-safe.
/// </summary>
/// <remarks>
/// A cached block lives long enough to reach the oldest generation, so a block cache that allocates one array per
/// block and drops it at eviction fills that generation with garbage at the write rate, since under sustained writes
/// every insert evicts. The shared array pool keeps only a few arrays per size, far fewer than a cache turns over (and
/// the flash writer returned them on its own thread): with this pool a compute silo taking 1 MiB writes at about
/// 180 MB/s allocated a third less (285 to 190 MB/s, BENCHMARKS.md).
/// Here an evicted block's array (after its flash demotion, if any) waits for the next insert of the same size. The
/// arrays kept idle are bounded (<see cref="MaxIdleBytes"/>); past that they go to the collector as before.
/// </remarks>
internal sealed class BlockBufferPool(long maxIdleBytes)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<int, Stack<byte[]>> _idle = [];
    private long _idleBytes;

    public long MaxIdleBytes { get; } = maxIdleBytes;

    /// <summary>Bytes held in idle arrays now.</summary>
    public long IdleBytes
    {
        get
        {
            lock (_lock)
            {
                return _idleBytes;
            }
        }
    }

    /// <summary>An array of exactly <paramref name="length"/> bytes, contents undefined.</summary>
    public byte[] Rent(int length)
    {
        lock (_lock)
        {
            if (_idle.TryGetValue(length, out var stack) && stack.TryPop(out var buffer))
            {
                _idleBytes -= length;
                return buffer;
            }
        }

        return GC.AllocateUninitializedArray<byte>(length);
    }

    /// <summary>Takes back an array nothing refers to any more; kept while the idle total stays within the bound.</summary>
    public void Return(byte[] buffer)
    {
        lock (_lock)
        {
            if (_idleBytes + buffer.Length > MaxIdleBytes)
            {
                return;
            }

            if (!_idle.TryGetValue(buffer.Length, out var stack))
            {
                stack = new Stack<byte[]>();
                _idle.Add(buffer.Length, stack);
            }

            stack.Push(buffer);
            _idleBytes += buffer.Length;
        }
    }
}
