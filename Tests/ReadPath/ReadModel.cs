namespace Converge.Tests.ReadPath;

/// <summary>
/// The exact bytes a volume must hold: every acknowledged write and zero range applied in completion order. Writes in
/// flight are not in the model; a read that overlaps one accepts, byte for byte, either the model's bytes as they were
/// when the read started or the in-flight write's bytes (<see cref="ReadExpectation"/>). Used by one driver thread only.
/// </summary>
internal sealed class ReadModel(long sizeBytes)
{
    private readonly byte[] _bytes = new byte[sizeBytes];

    public long SizeBytes { get; } = sizeBytes;

    public ReadOnlySpan<byte> Bytes(long offsetBytes, int lengthBytes) => _bytes.AsSpan((int)offsetBytes, lengthBytes);

    /// <summary>Applies an acknowledged write; <paramref name="data"/> empty means a zero range of <paramref name="lengthBytes"/>.</summary>
    public void Apply(long offsetBytes, int lengthBytes, byte[]? data)
    {
        var target = _bytes.AsSpan((int)offsetBytes, lengthBytes);
        if (data is null)
        {
            target.Clear();
        }
        else
        {
            data.CopyTo(target);
        }
    }
}

/// <summary>A write or zero range in flight: its bytes (null for zeros) may or may not be visible to a racing read.</summary>
internal sealed record PendingWrite(long OffsetBytes, int LengthBytes, byte[]? Data)
{
    public byte ByteAt(long offsetBytes) => Data is null ? (byte)0 : Data[offsetBytes - OffsetBytes];

    public bool Covers(long offsetBytes) => offsetBytes >= OffsetBytes && offsetBytes < OffsetBytes + LengthBytes;
}

/// <summary>What one read may return: the model's bytes when it started, or per byte those of a write then in flight.</summary>
internal sealed class ReadExpectation
{
    private readonly long _offsetBytes;
    private readonly byte[] _snapshot;
    private readonly PendingWrite[] _racing;

    public ReadExpectation(ReadModel model, long offsetBytes, int lengthBytes, IEnumerable<PendingWrite> inFlight)
    {
        _offsetBytes = offsetBytes;
        _snapshot = model.Bytes(offsetBytes, lengthBytes).ToArray();
        _racing = [.. inFlight.Where(w => w.OffsetBytes < offsetBytes + lengthBytes && offsetBytes < w.OffsetBytes + w.LengthBytes)];
    }

    public bool Racing => _racing.Length > 0;

    /// <summary>The volume offset of the first wrong byte found by the last <see cref="Check"/>, if any.</summary>
    public long? FirstWrongOffset { get; private set; }

    /// <summary>Null when <paramref name="actual"/> is allowed; else the first wrong byte with what was allowed there.</summary>
    public string? Check(ReadOnlySpan<byte> actual)
    {
        if (actual.Length != _snapshot.Length)
        {
            return $"read returned {actual.Length} bytes, asked for {_snapshot.Length}";
        }

        if (actual.SequenceEqual(_snapshot))
        {
            return null;
        }

        var wrong = 0;
        var first = -1;
        for (var i = 0; i < actual.Length; i++)
        {
            if (actual[i] == _snapshot[i] || RacingAllows(_offsetBytes + i, actual[i]))
            {
                continue;
            }

            wrong++;
            first = first < 0 ? i : first;
        }

        if (wrong == 0)
        {
            return null;
        }

        var at = _offsetBytes + first;
        FirstWrongOffset = at;
        var racing = _racing.Length == 0 ? "no write in flight" : $"{_racing.Length} writes in flight";
        return $"{wrong} wrong bytes; first at volume offset {at} (block {at / ReadPathSupport.BlockBytes}, byte {at % ReadPathSupport.BlockBytes}): " +
            $"got 0x{actual[first]:x2}, expected 0x{_snapshot[first]:x2} ({racing})";
    }

    private bool RacingAllows(long offsetBytes, byte value)
    {
        foreach (var write in _racing)
        {
            if (write.Covers(offsetBytes) && write.ByteAt(offsetBytes) == value)
            {
                return true;
            }
        }

        return false;
    }
}
