using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Converge.DataPath;
using Converge.Grains.DataChannel;
using Converge.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using static Converge.Tests.WritePath.DataFrameSocket;

namespace Converge.Tests.WritePath;

/// <summary>
/// The compute side of the data channel against storage nodes played by hand on loopback: every way a node can fail
/// reads as <see cref="MirrorStatus.Faulted"/> within the request timeout, answers find their own request in any order,
/// and a lost connection is replaced by the next append.
/// </summary>
public sealed class DataChannelClientTests : IDisposable
{
    private static readonly byte[] Records = new byte[4096];
    private readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }

    [Fact]
    public async Task NodeWithNoEndpoint_IsFaultedAtOnce()
    {
        using var client = new DataChannelClient(_ => null, NullLogger<DataChannelClient>.Instance);

        Assert.Equal([MirrorStatus.Faulted, MirrorStatus.Faulted], await client.AppendAsync("storage-9", Records, 2));
    }

    [Fact]
    public async Task EndpointWhereNothingListens_IsFaulted_WellWithinTheTimeout()
    {
        var vacant = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        vacant.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var endpoint = (IPEndPoint)vacant.LocalEndPoint!;
        vacant.Dispose();
        using var client = new DataChannelClient(_ => endpoint, NullLogger<DataChannelClient>.Instance);
        var clock = Stopwatch.StartNew();

        Assert.Equal([MirrorStatus.Faulted], await client.AppendAsync("storage-1", Records, 1));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.5), $"a refused connection took {clock.Elapsed}");
    }

    [Fact]
    public async Task NodeThatRefusesTheHandshake_IsFaulted()
    {
        var node = Serve(async socket =>
        {
            var (hello, _) = await ReadFrameAsync(socket);
            await SendFrameAsync(socket, DataFrameType.HelloReply, hello.RequestId, [(byte)HelloStatus.WrongNode]);
            await ReadFrameAsync(socket);
        });
        using var client = new DataChannelClient(_ => node, NullLogger<DataChannelClient>.Instance);

        Assert.Equal([MirrorStatus.Faulted], await client.AppendAsync("storage-1", Records, 1));
    }

    [Fact]
    public async Task NodeThatNeverAnswers_IsFaultedAfterTheRequestTimeout_AndTheConnectionIsDropped()
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var node = Serve(async socket =>
        {
            await HandshakeAsync(socket, "storage-1");
            try
            {
                // Read the append and answer nothing, until the client gives up on the connection.
                while (true)
                {
                    await ReadFrameAsync(socket);
                }
            }
            catch (Exception e) when (e is EndOfStreamException or SocketException)
            {
                closed.TrySetResult();
            }
        });
        using var client = new DataChannelClient(_ => node, NullLogger<DataChannelClient>.Instance);
        var clock = Stopwatch.StartNew();

        var statuses = await client.AppendAsync("storage-1", Records, 3).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([MirrorStatus.Faulted, MirrorStatus.Faulted, MirrorStatus.Faulted], statuses);
        Assert.InRange(clock.Elapsed, DataChannelClient.RequestTimeout - TimeSpan.FromMilliseconds(50), DataChannelClient.RequestTimeout + TimeSpan.FromSeconds(3));
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AnswersOutOfOrder_ReachTheirOwnRequests()
    {
        var node = Serve(async socket =>
        {
            await HandshakeAsync(socket, "storage-1");
            var (first, _) = await ReadFrameAsync(socket);
            var (second, _) = await ReadFrameAsync(socket);
            await SendFrameAsync(socket, DataFrameType.AppendReply, second.RequestId, [(byte)MirrorStatus.Sealed]);
            await SendFrameAsync(socket, DataFrameType.AppendReply, first.RequestId, [(byte)MirrorStatus.Ok, (byte)MirrorStatus.NvramFull]);
            await ReadFrameAsync(socket);
        });
        using var client = new DataChannelClient(_ => node, NullLogger<DataChannelClient>.Instance);

        var first = client.AppendAsync("storage-1", Records, 2);
        var second = client.AppendAsync("storage-1", Records, 1);

        Assert.Equal([MirrorStatus.Ok, MirrorStatus.NvramFull], await first.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal([MirrorStatus.Sealed], await second.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ConnectionClosedWithAppendsInFlight_FaultsThemAll_AndTheNextAppendReconnects()
    {
        var connections = 0;
        var node = Serve(async socket =>
        {
            var number = Interlocked.Increment(ref connections);
            await HandshakeAsync(socket, "storage-1");
            var (append, _) = await ReadFrameAsync(socket);
            if (number == 1)
            {
                await ReadFrameAsync(socket);
                return; // closes with both appends unanswered
            }

            await SendFrameAsync(socket, DataFrameType.AppendReply, append.RequestId, [(byte)MirrorStatus.Ok]);
            await ReadFrameAsync(socket);
        });
        using var client = new DataChannelClient(_ => node, NullLogger<DataChannelClient>.Instance);

        var lost = await Task.WhenAll(client.AppendAsync("storage-1", Records, 1), client.AppendAsync("storage-1", Records, 1)).WaitAsync(TimeSpan.FromSeconds(10));
        var next = await client.AppendAsync("storage-1", Records, 1).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(lost, statuses => Assert.Equal([MirrorStatus.Faulted], statuses));
        Assert.Equal([MirrorStatus.Ok], next);
        Assert.Equal(2, connections);
    }

    [Fact]
    public async Task AppliesAndAppends_ShareAConnection_EachAnsweredByItsOwnKindOfReply()
    {
        byte[]? received = null;
        var node = Serve(async socket =>
        {
            await HandshakeAsync(socket, "storage-2");
            var (apply, body) = await ReadFrameAsync(socket);
            var (append, _) = await ReadFrameAsync(socket);
            received = body;
            await SendFrameAsync(socket, DataFrameType.AppendReply, append.RequestId, [(byte)MirrorStatus.Ok]);
            await SendFrameAsync(socket, DataFrameType.ApplyReply, apply.RequestId, ApplyFrame.EncodeReply(new ExtentApplyReply(ExtentStatus.Ok, 3, 1, "")));
            await ReadFrameAsync(socket);
        });
        using var client = new DataChannelClient(_ => node, NullLogger<DataChannelClient>.Instance);
        var applyBody = new byte[ApplyFrame.HeaderLengthBytes];
        applyBody[0] = 0x5A;

        var applied = client.ApplyAsync("storage-2", applyBody);
        var appended = client.AppendAsync("storage-2", Records, 1);

        Assert.Equal([MirrorStatus.Ok], await appended.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(new ExtentApplyReply(ExtentStatus.Ok, 3, 1, ""), await applied.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(applyBody, received);
    }

    [Fact]
    public async Task ApplyAnsweredWithTheWrongKindOfReply_IsFaultedWithTheReason_AndTheConnectionDropped()
    {
        var connections = 0;
        var node = Serve(async socket =>
        {
            Interlocked.Increment(ref connections);
            await HandshakeAsync(socket, "storage-2");
            var (apply, _) = await ReadFrameAsync(socket);
            await SendFrameAsync(socket, DataFrameType.AppendReply, apply.RequestId, [(byte)MirrorStatus.Ok]);
            await ReadFrameAsync(socket);
        });
        using var client = new DataChannelClient(_ => node, NullLogger<DataChannelClient>.Instance);

        var reply = await client.ApplyAsync("storage-2", new byte[ApplyFrame.HeaderLengthBytes]).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ExtentStatus.Faulted, reply.Status);
        Assert.Contains("storage-2", reply.Message);
        Assert.Contains("AppendReply", reply.Message);

        // The connection that answered out of protocol is gone: the next request opens another.
        await client.ApplyAsync("storage-2", new byte[ApplyFrame.HeaderLengthBytes]).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, connections);
    }

    [Fact]
    public async Task ApplyToANodeWithNoEndpoint_IsFaultedAtOnce_WithTheReason()
    {
        using var client = new DataChannelClient(_ => null, NullLogger<DataChannelClient>.Instance);

        var reply = await client.ApplyAsync("storage-9", new byte[ApplyFrame.HeaderLengthBytes]);

        Assert.Equal(ExtentStatus.Faulted, reply.Status);
        Assert.Contains("storage-9", reply.Message);
    }

    /// <summary>A loopback listener running <paramref name="session"/> for each connection (closed after it); its endpoint.</summary>
    private IPEndPoint Serve(Func<Socket, Task> session)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(8);
        _owned.Add(listener);
        _ = Task.Run(async () =>
        {
            for (var i = 0; i < 8; i++)
            {
                Socket socket;
                try
                {
                    socket = await listener.AcceptAsync();
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }

                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        try
                        {
                            await session(socket);
                        }
                        catch (Exception e) when (e is SocketException or EndOfStreamException or ObjectDisposedException)
                        {
                        }
                    }
                });
            }
        });
        return (IPEndPoint)listener.LocalEndPoint!;
    }

    private static async Task HandshakeAsync(Socket socket, string expectedNode)
    {
        var (hello, body) = await ReadFrameAsync(socket);
        Assert.Equal(DataFrameType.Hello, hello.Type);
        Assert.Equal(DataFrameHeader.ProtocolVersion, BinaryPrimitives.ReadUInt16LittleEndian(body));
        Assert.Equal(expectedNode, Encoding.UTF8.GetString(body, 2, body.Length - 2));
        await SendFrameAsync(socket, DataFrameType.HelloReply, hello.RequestId, [(byte)HelloStatus.Ok]);
    }
}
