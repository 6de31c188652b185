namespace Converge.Fuzz.Nbd;

/// <summary>
/// A duplex stream for one fuzzed session: reads return the input bytes in small, input-chosen pieces (so
/// partial reads are exercised), then end of stream; writes are counted and dropped.
/// </summary>
internal sealed class ScriptedClientStream(byte[] input) : Stream
{
    private int _position;

    public long WrittenBytes { get; private set; }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var remaining = input.Length - _position;
        if (remaining <= 0 || buffer.Length == 0)
        {
            return 0;
        }

        // Piece size from the data itself: deterministic for a given input, and varied.
        var piece = 1 + (input[_position] % 61 == 0 ? 0 : remaining);
        var count = Math.Min(Math.Min(buffer.Length, remaining), piece);
        input.AsSpan(_position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WrittenBytes += count;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        WrittenBytes += buffer.Length;
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        WrittenBytes += count;
        return Task.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
