using System.Buffers;

namespace Converge.Nbd.Connection;

/// <summary>
/// Buffered exact reads from a client's stream. Owns one pooled buffer, returned on dispose. A stream that ends
/// early raises <see cref="EndOfStreamException"/>, which the connection treats as the client going away.
/// </summary>
internal sealed class NbdStreamReader : IDisposable
{
    private const int BufferBytes = 64 * 1024;
    private readonly Stream _stream;
    private byte[] _buffer;
    private int _start;
    private int _end;

    public NbdStreamReader(Stream stream)
    {
        _stream = stream;
        _buffer = ArrayPool<byte>.Shared.Rent(BufferBytes);
    }

    public async ValueTask ReadExactlyAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        var buffered = _end - _start;
        if (buffered >= destination.Length)
        {
            _buffer.AsMemory(_start, destination.Length).CopyTo(destination);
            _start += destination.Length;
            return;
        }

        _buffer.AsMemory(_start, buffered).CopyTo(destination);
        _start = _end = 0;
        var remaining = destination[buffered..];
        if (remaining.Length >= BufferBytes / 2)
        {
            // Large payloads go straight into the caller's buffer: no second copy.
            await _stream.ReadExactlyAsync(remaining, cancellationToken).ConfigureAwait(false);
            return;
        }

        while (_end < remaining.Length)
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(_end, BufferBytes - _end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException("The client closed the connection mid-message.");
            }

            _end += read;
        }

        _buffer.AsMemory(0, remaining.Length).CopyTo(remaining);
        _start = remaining.Length;
    }

    /// <summary>Reads and drops <paramref name="count"/> bytes through the fixed buffer.</summary>
    public async ValueTask SkipAsync(long count, CancellationToken cancellationToken)
    {
        var buffered = _end - _start;
        if (count <= buffered)
        {
            _start += (int)count;
            return;
        }

        count -= buffered;
        _start = _end = 0;
        while (count > 0)
        {
            var read = await _stream.ReadAsync(_buffer.AsMemory(0, (int)Math.Min(count, BufferBytes)), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException("The client closed the connection mid-payload.");
            }

            count -= read;
        }
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
