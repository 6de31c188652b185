using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>
/// A byte-level NBD client for conformance tests: it can send anything, including what a real client never would.
/// Every read has a timeout whose failure says what was awaited.
/// </summary>
public sealed class RawNbdClient : IAsyncDisposable
{
    public const ulong OptionMagic = 0x49484156454F5054;
    public const ulong OptionReplyMagic = 0x3e889045565a9;
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(20);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private RawNbdClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public ushort HandshakeFlags { get; private set; }

    public static async Task<RawNbdClient> ConnectAsync(int port, uint clientFlags = 3)
    {
        var client = await ConnectRawAsync(port);
        var greeting = await client.ReadExactAsync(18, "server greeting");
        Assert.Equal(0x4e42444d41474943ul, BinaryPrimitives.ReadUInt64BigEndian(greeting));
        Assert.Equal(OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)));
        client.HandshakeFlags = BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
        var flags = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(flags, clientFlags);
        await client.SendAsync(flags);
        return client;
    }

    public static async Task<RawNbdClient> ConnectRawAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = new CancellationTokenSource(ReadTimeout);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        return new RawNbdClient(socket);
    }

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        using var timeout = new CancellationTokenSource(ReadTimeout);
        await _stream.WriteAsync(bytes, timeout.Token);
    }

    public Task SendOptionHeaderAsync(uint option, uint lengthBytes)
    {
        var header = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(header, OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), lengthBytes);
        return SendAsync(header);
    }

    public async Task SendOptionAsync(uint option, byte[] data)
    {
        await SendOptionHeaderAsync(option, (uint)data.Length);
        await SendAsync(data);
    }

    public async Task<(uint Option, uint Type, byte[] Data)> ReadOptionReplyAsync()
    {
        var header = await ReadExactAsync(20, "option reply header");
        Assert.Equal(OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        Assert.True(length < 1 << 20, $"option reply of {length} bytes");
        var data = await ReadExactAsync((int)length, "option reply data");
        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), data);
    }

    /// <summary>NBD_OPT_INFO/GO data for <paramref name="name"/> with the given information requests.</summary>
    public static byte[] InfoRequest(byte[] name, params ushort[] requests)
    {
        var data = new byte[6 + name.Length + (2 * requests.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
        name.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + name.Length), (ushort)requests.Length);
        for (var i = 0; i < requests.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + name.Length + (2 * i)), requests[i]);
        }

        return data;
    }

    /// <summary>Negotiates (optionally structured replies and base:allocation) and enters transmission; returns the size.</summary>
    public async Task<long> GoAsync(string name, bool structured, bool allocationContext = false)
    {
        if (structured)
        {
            await SendOptionAsync(8, []);
            Assert.Equal(1u, (await ReadOptionReplyAsync()).Type);
        }

        if (allocationContext)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name);
            var query = "base:allocation"u8.ToArray();
            var data = new byte[4 + nameBytes.Length + 4 + 4 + query.Length];
            BinaryPrimitives.WriteUInt32BigEndian(data, (uint)nameBytes.Length);
            nameBytes.CopyTo(data, 4);
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4 + nameBytes.Length), 1);
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(8 + nameBytes.Length), (uint)query.Length);
            query.CopyTo(data, 12 + nameBytes.Length);
            await SendOptionAsync(10, data);
            Assert.Equal(4u, (await ReadOptionReplyAsync()).Type);
            Assert.Equal(1u, (await ReadOptionReplyAsync()).Type);
        }

        await SendOptionAsync(7, InfoRequest(Encoding.UTF8.GetBytes(name)));
        long size = -1;
        for (var i = 0; i < 16; i++)
        {
            var reply = await ReadOptionReplyAsync();
            if (reply.Type == 1)
            {
                return size;
            }

            Assert.Equal(3u, reply.Type);
            if (BinaryPrimitives.ReadUInt16BigEndian(reply.Data) == 0)
            {
                size = BinaryPrimitives.ReadInt64BigEndian(reply.Data.AsSpan(2));
            }
        }

        throw new InvalidOperationException("NBD_OPT_GO sent more than 16 replies");
    }

    public Task SendRequestAsync(ushort command, ushort flags, ulong cookie, ulong offset, uint length, byte[]? payload = null)
    {
        var request = new byte[28 + (payload?.Length ?? 0)];
        BinaryPrimitives.WriteUInt32BigEndian(request, 0x25609513);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), command);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(16), offset);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(24), length);
        payload?.CopyTo(request, 28);
        return SendAsync(request);
    }

    /// <summary>Reads a simple reply; data follows only for a successful read of <paramref name="dataBytes"/>.</summary>
    public async Task<(uint Error, ulong Cookie, byte[] Data)> ReadSimpleReplyAsync(ulong? expectedCookie = null, int dataBytes = 0)
    {
        var reply = await ReadSimpleReplyAsync(cookie =>
        {
            if (expectedCookie is not null)
            {
                Assert.Equal(expectedCookie.Value, cookie);
            }

            return dataBytes;
        });
        return reply;
    }

    /// <summary>
    /// Reads a simple reply to one of several requests in flight: replies come in completion order, so how much data
    /// follows depends on the cookie, which <paramref name="dataBytesFor"/> maps to a read length (0 for none).
    /// </summary>
    public async Task<(uint Error, ulong Cookie, byte[] Data)> ReadSimpleReplyAsync(Func<ulong, int> dataBytesFor)
    {
        var header = await ReadExactAsync(16, "simple reply");
        Assert.Equal(0x67446698u, BinaryPrimitives.ReadUInt32BigEndian(header));
        var error = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
        var cookie = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
        var dataBytes = dataBytesFor(cookie);
        var data = error == 0 && dataBytes > 0 ? await ReadExactAsync(dataBytes, "read reply data") : [];
        return (error, cookie, data);
    }

    /// <summary>Reads one structured chunk (fails on a simple reply).</summary>
    public async Task<(ushort Flags, ushort Type, ulong Cookie, byte[] Payload)> ReadStructuredChunkAsync()
    {
        var header = await ReadExactAsync(20, "structured reply chunk");
        Assert.Equal(0x668e33efu, BinaryPrimitives.ReadUInt32BigEndian(header));
        var length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        var payload = await ReadExactAsync((int)length, "structured reply payload");
        return (BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6)),
            BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)), payload);
    }

    public async Task<byte[]> ReadExactAsync(int count, string what)
    {
        var buffer = new byte[count];
        using var timeout = new CancellationTokenSource(ReadTimeout);
        try
        {
            await _stream.ReadExactlyAsync(buffer, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"timed out after {ReadTimeout} waiting for {what} ({count} bytes)");
        }

        return buffer;
    }

    /// <summary>True when the server closes the connection (end of stream or reset) before the timeout.</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(ReadTimeout);
        try
        {
            for (var i = 0; i < 1024; i++)
            {
                if (await _stream.ReadAsync(buffer, timeout.Token) == 0)
                {
                    return true;
                }
            }

            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
