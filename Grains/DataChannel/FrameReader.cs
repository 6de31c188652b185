using System.Net.Sockets;
using Converge.Buffers;

namespace Converge.Grains.DataChannel;

/// <summary>
/// Reads data-channel frames from a socket through one receive buffer, so that many small frames arriving together
/// cost one receive; a body larger than what is buffered is received straight into its own pooled array.
/// </summary>
public sealed class FrameReader(Socket socket, int bufferBytes = 64 * 1024)
{
    private readonly byte[] _buffer = new byte[bufferBytes];
    private int _start;
    private int _end;

    /// <summary>Bytes received so far, for watchdogs.</summary>
    public long ReceivedBytes { get; private set; }

    /// <summary>
    /// The next frame: its header and its body in a pooled array (the caller returns it to <see cref="LargeBuffers"/>;
    /// empty bodies get an empty array). Null when the peer closed the connection between frames.
    /// </summary>
    /// <exception cref="InvalidDataException">The header is malformed, or the stream ended inside a frame.</exception>
    public async ValueTask<(DataFrameHeader Header, byte[] Body)?> ReadAsync(CancellationToken cancellationToken)
    {
        if (!await FillAsync(DataFrameHeader.Length, cancellationToken).ConfigureAwait(false))
        {
            if (_end == _start)
            {
                return null;
            }

            throw new InvalidDataException("the connection closed inside a frame header");
        }

        var header = DataFrameHeader.TryRead(_buffer.AsSpan(_start, DataFrameHeader.Length), out var error)
            ?? throw new InvalidDataException(error);
        _start += DataFrameHeader.Length;
        if (header.BodyLength == 0)
        {
            return (header, []);
        }

        var body = LargeBuffers.Rent(header.BodyLength);
        try
        {
            var buffered = Math.Min(_end - _start, header.BodyLength);
            _buffer.AsSpan(_start, buffered).CopyTo(body);
            _start += buffered;
            var filled = buffered;
            while (filled < header.BodyLength)
            {
                var read = await socket.ReceiveAsync(body.AsMemory(filled, header.BodyLength - filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new InvalidDataException("the connection closed inside a frame body");
                }

                filled += read;
                ReceivedBytes += read;
            }

            return (header, body);
        }
        catch
        {
            LargeBuffers.Return(body);
            throw;
        }
    }

    /// <summary>Makes at least <paramref name="count"/> bytes available from <see cref="_start"/>; false at end of stream.</summary>
    private async ValueTask<bool> FillAsync(int count, CancellationToken cancellationToken)
    {
        if (_end - _start >= count)
        {
            return true;
        }

        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        while (_end < count)
        {
            var read = await socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return false;
            }

            _end += read;
            ReceivedBytes += read;
        }

        return true;
    }
}
