namespace Converge.Tests.Nbd;

/// <summary>
/// A sparse in-memory volume in 4 KiB blocks: absent blocks are holes that read as zeros. Thread-safe under one
/// lock (tests, not a hot path). Tracks opens, disposals and writes in progress so tests can check the server's
/// lifecycle.
/// </summary>
public sealed class MemoryVolume
{
    public const int BlockBytes = 4096;

    private readonly Lock _lock = new();
    private readonly Dictionary<long, byte[]> _blocks = [];
    private readonly TaskCompletionSource _firstDispose = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _opens;
    private int _disposes;
    private int _writesInProgress;
    private int _disposedWithWritesInProgress;

    public MemoryVolume(string name, long sizeBytes, string description)
    {
        Name = name;
        SizeBytes = sizeBytes;
        Description = description;
    }

    public string Name { get; }

    public long SizeBytes { get; }

    public string Description { get; }

    /// <summary>When set, every write waits for this task before changing anything.</summary>
    public Task? WriteGate { get; set; }

    public int Opens => Volatile.Read(ref _opens);

    public int Disposes => Volatile.Read(ref _disposes);

    public int DisposedWithWritesInProgress => Volatile.Read(ref _disposedWithWritesInProgress);

    public Task FirstDispose => _firstDispose.Task;

    public int AllocatedBlocks
    {
        get
        {
            lock (_lock)
            {
                return _blocks.Count;
            }
        }
    }

    internal MemoryExport Open()
    {
        Interlocked.Increment(ref _opens);
        return new MemoryExport(this);
    }

    internal void OnDispose()
    {
        if (Volatile.Read(ref _writesInProgress) != 0)
        {
            Interlocked.Increment(ref _disposedWithWritesInProgress);
        }

        Interlocked.Increment(ref _disposes);
        _firstDispose.TrySetResult();
    }

    internal void BeginWrite() => Interlocked.Increment(ref _writesInProgress);

    internal void EndWrite() => Interlocked.Decrement(ref _writesInProgress);

    public void Read(long offsetBytes, Span<byte> destination)
    {
        lock (_lock)
        {
            var done = 0;
            while (done < destination.Length)
            {
                var position = offsetBytes + done;
                var index = position / BlockBytes;
                var within = (int)(position % BlockBytes);
                var count = Math.Min(BlockBytes - within, destination.Length - done);
                if (_blocks.TryGetValue(index, out var block))
                {
                    block.AsSpan(within, count).CopyTo(destination.Slice(done, count));
                }
                else
                {
                    destination.Slice(done, count).Clear();
                }

                done += count;
            }
        }
    }

    public byte[] Read(long offsetBytes, int lengthBytes)
    {
        var bytes = new byte[lengthBytes];
        Read(offsetBytes, bytes);
        return bytes;
    }

    public void Write(long offsetBytes, ReadOnlySpan<byte> source)
    {
        lock (_lock)
        {
            var done = 0;
            while (done < source.Length)
            {
                var position = offsetBytes + done;
                var index = position / BlockBytes;
                var within = (int)(position % BlockBytes);
                var count = Math.Min(BlockBytes - within, source.Length - done);
                if (!_blocks.TryGetValue(index, out var block))
                {
                    block = new byte[BlockBytes];
                    _blocks[index] = block;
                }

                source.Slice(done, count).CopyTo(block.AsSpan(within, count));
                done += count;
            }
        }
    }

    /// <summary>Zeroes a range; whole blocks are dropped (holes) when <paramref name="deallocate"/>, else kept allocated.</summary>
    public void Zero(long offsetBytes, long lengthBytes, bool deallocate)
    {
        lock (_lock)
        {
            var end = offsetBytes + lengthBytes;
            var position = offsetBytes;
            while (position < end)
            {
                var index = position / BlockBytes;
                var within = (int)(position % BlockBytes);
                var count = (int)Math.Min(BlockBytes - within, end - position);
                if (deallocate && count == BlockBytes)
                {
                    _blocks.Remove(index);
                }
                else if (_blocks.TryGetValue(index, out var block))
                {
                    block.AsSpan(within, count).Clear();
                }
                else if (!deallocate)
                {
                    _blocks[index] = new byte[BlockBytes];
                }

                position += count;
            }
        }
    }

    public bool IsAllocated(long offsetBytes)
    {
        lock (_lock)
        {
            return _blocks.ContainsKey(offsetBytes / BlockBytes);
        }
    }
}
