using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Converge.Grains.DataChannel;

namespace Converge.Tests.WritePath;

/// <summary>Data-channel frames written and read by hand on a socket, for tests that play either end of the channel.</summary>
internal static class DataFrameSocket
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(30);

    public static byte[] HelloBody(string node)
    {
        var name = Encoding.UTF8.GetBytes(node);
        var body = new byte[2 + name.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(body, DataFrameHeader.ProtocolVersion);
        name.CopyTo(body, 2);
        return body;
    }

    public static async Task SendFrameAsync(Socket socket, DataFrameType type, ulong requestId, byte[] body)
    {
        var frame = new byte[DataFrameHeader.Length + body.Length];
        new DataFrameHeader(body.Length, type, requestId).Write(frame);
        body.CopyTo(frame, DataFrameHeader.Length);
        await socket.SendAsync(frame);
    }

    /// <summary>The next frame; <see cref="EndOfStreamException"/> when the peer closes the connection first.</summary>
    public static async Task<(DataFrameHeader Header, byte[] Body)> ReadFrameAsync(Socket socket)
    {
        var head = new byte[DataFrameHeader.Length];
        await ReadExactlyAsync(socket, head);
        var header = DataFrameHeader.TryRead(head, out var error) ?? throw new InvalidDataException(error);
        var body = new byte[header.BodyLength];
        await ReadExactlyAsync(socket, body);
        return (header, body);
    }

    private static async Task ReadExactlyAsync(Socket socket, byte[] buffer)
    {
        using var timeout = new CancellationTokenSource(ReadTimeout);
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, timeout.Token);
            if (read == 0)
            {
                throw new EndOfStreamException("the peer closed the connection");
            }

            filled += read;
        }
    }
}
