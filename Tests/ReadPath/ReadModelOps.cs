namespace Converge.Tests.ReadPath;

internal enum ReadModelOpKind
{
    Write,
    WriteUnaligned,
    Zero,
    Read,
    Evict,
    EvictVolume,
    Move,
    WaitForDestage,
}

/// <summary>One random operation; <see cref="Node"/> names the node of a volume eviction, <see cref="DataSeed"/> the write's bytes.</summary>
internal readonly record struct ReadModelOp(int Index, ReadModelOpKind Kind, long OffsetBytes, int LengthBytes, bool OnHolder, int DataSeed)
{
    public bool IsWrite => Kind is ReadModelOpKind.Write or ReadModelOpKind.WriteUnaligned or ReadModelOpKind.Zero;

    /// <summary>The bytes a write or zero range puts on the volume, the same every time for the same op.</summary>
    public byte[] WrittenBytes()
    {
        var data = new byte[LengthBytes];
        if (Kind != ReadModelOpKind.Zero)
        {
            new Random(DataSeed).NextBytes(data);
        }

        return data;
    }

    public override string ToString() => Kind switch
    {
        ReadModelOpKind.Move or ReadModelOpKind.WaitForDestage => $"#{Index} {Kind}",
        ReadModelOpKind.EvictVolume => $"#{Index} {Kind} on {(OnHolder ? "holder" : "other node")}",
        _ => $"#{Index} {Kind} [{OffsetBytes}, +{LengthBytes})",
    };
}

/// <summary>
/// Draws the operation sequence from a seed alone (never from timing), so a seed replays the same operations; only
/// their interleaving varies between runs. Each phase between moves has its own share of writes, so some phases read
/// mostly (the peer and the log serve them) and others overwrite heavily.
/// </summary>
internal sealed class ReadModelOpSource(int seed, long volumeBytes, int totalOps)
{
    private const int BlockBytes = ReadPathSupport.BlockBytes;
    private const int MaxIoBytes = 64 * 1024;
    private readonly Random _random = new(seed);
    private readonly long _blocks = volumeBytes / BlockBytes;
    private double _writeShare = 0.4;
    private long _lastWriteOffsetBytes;
    private int _lastWriteBytes;

    /// <summary>One move per this many operations on average: each costs a seal, a detach and an attach.</summary>
    public int OpsPerMove { get; init; } = 150;

    /// <summary>How many times the run stops writing until the log is destaged (evenly spaced).</summary>
    public int DestageWaits { get; init; } = 3;

    public ReadModelOp Next(int index)
    {
        var spacing = totalOps / (DestageWaits + 1);
        if (index > 0 && index % spacing == 0 && index / spacing <= DestageWaits)
        {
            return new ReadModelOp(index, ReadModelOpKind.WaitForDestage, 0, 0, true, 0);
        }

        if (index > 0 && _random.Next(OpsPerMove) == 0)
        {
            _writeShare = 0.05 + (_random.NextDouble() * 0.5);
            return new ReadModelOp(index, ReadModelOpKind.Move, 0, 0, true, 0);
        }

        var roll = _random.NextDouble();
        if (roll < 0.007)
        {
            return new ReadModelOp(index, ReadModelOpKind.EvictVolume, 0, 0, _random.Next(2) == 0, 0);
        }

        if (roll < 0.09)
        {
            if (_lastWriteBytes > 0 && _random.Next(3) == 0)
            {
                // The blocks just written, likely still in flight or being read: eviction racing both.
                return Ranged(index, ReadModelOpKind.Evict, _lastWriteOffsetBytes, _lastWriteBytes);
            }

            var length = _random.Next(8) == 0 ? _random.Next(1, 4 * 1024 * 1024) : _random.Next(1, 256 * 1024);
            return Ranged(index, ReadModelOpKind.Evict, _random.NextInt64(volumeBytes), length);
        }

        if (_random.NextDouble() < _writeShare)
        {
            var kind = _random.NextDouble() switch
            {
                < 0.65 => ReadModelOpKind.Write,
                < 0.9 => ReadModelOpKind.WriteUnaligned,
                _ => ReadModelOpKind.Zero,
            };
            var write = kind switch
            {
                ReadModelOpKind.Write => Ranged(index, kind, _random.NextInt64(_blocks) * BlockBytes, BlockCount() * BlockBytes),
                ReadModelOpKind.WriteUnaligned => Ranged(index, kind, _random.NextInt64(volumeBytes), SmallOrLarge(MaxIoBytes)),
                _ => Ranged(index, kind, MaybeAligned(), SmallOrLarge(4 * MaxIoBytes)),
            };
            _lastWriteOffsetBytes = write.OffsetBytes;
            _lastWriteBytes = write.LengthBytes;
            return write;
        }

        if (_lastWriteBytes > 0 && _random.Next(5) == 0)
        {
            // Reads of what was just written: they race the write (either version is allowed) and later evictions.
            return Ranged(index, ReadModelOpKind.Read, _lastWriteOffsetBytes, _lastWriteBytes);
        }

        var readBytes = _random.Next(33) == 0 ? _random.Next(1, 1024 * 1024) : SmallOrLarge(MaxIoBytes);
        return Ranged(index, ReadModelOpKind.Read, MaybeAligned(), readBytes);
    }

    private ReadModelOp Ranged(int index, ReadModelOpKind kind, long offsetBytes, int lengthBytes)
    {
        var length = (int)Math.Min(lengthBytes, volumeBytes - offsetBytes);
        return new ReadModelOp(index, kind, offsetBytes, Math.Max(1, length), true, _random.Next());
    }

    /// <summary>Mostly one or two blocks (the common small I/O), otherwise up to 16.</summary>
    private int BlockCount() => _random.Next(2) == 0 ? _random.Next(1, 3) : _random.Next(1, (MaxIoBytes / BlockBytes) + 1);

    private int SmallOrLarge(int maxBytes) => _random.Next(2) == 0 ? _random.Next(1, BlockBytes + 1) : _random.Next(1, maxBytes + 1);

    private long MaybeAligned()
    {
        var offset = _random.NextInt64(volumeBytes - 1);
        return _random.Next(2) == 0 ? offset / BlockBytes * BlockBytes : offset;
    }
}
