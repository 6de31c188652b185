using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Converge.Buffers;
using Converge.Grains.Cluster;
using Converge.Grains.Segments;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.DataChannel;

/// <summary>
/// The storage node's listening socket for the data channel, bound before the silo starts so that its address can be
/// published in the silo's metadata (<see cref="Converge.Cluster.NodeRoles.DataEndpointKey"/>).
/// </summary>
public sealed class DataChannelListener : IDisposable
{
    private DataChannelListener(Socket socket) => Socket = socket;

    public Socket Socket { get; }

    public IPEndPoint EndPoint => (IPEndPoint)Socket.LocalEndPoint!;

    /// <summary>Binds <paramref name="address"/>:<paramref name="port"/> (0 = any free port) and listens.</summary>
    public static DataChannelListener Bind(IPAddress address, int port)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(256);
            return new DataChannelListener(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => Socket.Dispose();
}

/// <summary>
/// Serves the data channel on a storage node: compute nodes' append frames go straight to <see cref="SegmentAppender"/>
/// and each is answered when its records are committed, and other storage nodes' destage applies go straight to the
/// extent store (<see cref="Extents.ExtentApplier"/>) and are answered once durable, with no grain call on either side.
/// Identity, placement, fencing and everything else stay with the grains. Format and failure handling:
/// docs/data-channel.md.
/// </summary>
public sealed partial class DataChannelServer(
    DataChannelListener listener,
    SegmentAppender appender,
    Extents.ExtentApplier applier,
    LocalNode localNode,
    ILogger<DataChannelServer> logger)
    : BackgroundService
{
    /// <summary>Append bytes one connection may have waiting for their commit before it stops reading.</summary>
    private const long MaxInFlightBytesPerConnection = 32L * 1024 * 1024;

    private readonly object _lock = new();
    private readonly HashSet<Socket> _connections = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LogListening(listener.EndPoint.ToString());
        using var stop = stoppingToken.Register(() =>
        {
            listener.Dispose();
            lock (_lock)
            {
                foreach (var socket in _connections)
                {
                    socket.Dispose();
                }
            }
        });

        while (!stoppingToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.Socket.AcceptAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                // A connection reset before it was accepted, or descriptors exhausted for a moment.
                LogAcceptFailed(e.Message);
                await Task.Delay(100, stoppingToken).ConfigureAwait(false);
                continue;
            }

            socket.NoDelay = true;
            lock (_lock)
            {
                _connections.Add(socket);
            }

            _ = ServeAsync(socket, stoppingToken);
        }
    }

    private async Task ServeAsync(Socket socket, CancellationToken stoppingToken)
    {
        var peer = socket.RemoteEndPoint?.ToString() ?? "?";
        var writer = new FrameWriter(socket, _ => socket.Dispose());
        var connection = new ConnectionState();
        try
        {
            var reader = new FrameReader(socket);
            if (!await HandshakeAsync(reader, writer, peer, stoppingToken).ConfigureAwait(false))
            {
                return;
            }

            while (true)
            {
                var frame = await reader.ReadAsync(stoppingToken).ConfigureAwait(false);
                if (frame is not { } f)
                {
                    return;
                }

                if (f.Header.Type is not (DataFrameType.Append or DataFrameType.Apply))
                {
                    ReturnBody(f.Body);
                    throw new InvalidDataException($"a {f.Header.Type} frame where appends or applies are expected");
                }

                await connection.AdmitAsync(f.Header.BodyLength, stoppingToken).ConfigureAwait(false);
                _ = f.Header.Type == DataFrameType.Append
                    ? AppendAsync(f.Header, f.Body, writer, connection)
                    : ApplyAsync(f.Header, f.Body, writer, connection);
            }
        }
        catch (InvalidDataException e)
        {
            LogBadFrame(peer, e.Message);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or IOException)
        {
            // The peer went away, or this silo is stopping: whatever was not answered is the writer's to retry elsewhere.
        }
        finally
        {
            lock (_lock)
            {
                _connections.Remove(socket);
            }

            socket.Dispose();
        }
    }

    private async Task<bool> HandshakeAsync(FrameReader reader, FrameWriter writer, string peer, CancellationToken stoppingToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var frame = await reader.ReadAsync(timeout.Token).ConfigureAwait(false);
        if (frame is not { } hello)
        {
            return false;
        }

        try
        {
            if (hello.Header.Type != DataFrameType.Hello || hello.Header.BodyLength < 2)
            {
                throw new InvalidDataException($"a {hello.Header.Type} frame of {hello.Header.BodyLength} bytes where a hello is expected");
            }

            var version = BinaryPrimitives.ReadUInt16LittleEndian(hello.Body);
            var node = Encoding.UTF8.GetString(hello.Body, 2, hello.Header.BodyLength - 2);
            var status = version is < DataFrameHeader.OldestProtocolVersion or > DataFrameHeader.ProtocolVersion ? HelloStatus.UnsupportedVersion
                : node != localNode.Name ? HelloStatus.WrongNode
                : HelloStatus.Ok;
            writer.Send(DataFrameType.HelloReply, hello.Header.RequestId, new[] { (byte)status });
            if (status != HelloStatus.Ok)
            {
                LogRefused(peer, node, version, status);
                // Let the reply leave before the connection closes.
                await Task.Delay(100, stoppingToken).ConfigureAwait(false);
                return false;
            }

            return true;
        }
        finally
        {
            ReturnBody(hello.Body);
        }
    }

    private async Task AppendAsync(DataFrameHeader header, byte[] body, FrameWriter writer, ConnectionState connection)
    {
        try
        {
            var statuses = await appender.AppendAsync(body.AsMemory(0, header.BodyLength)).ConfigureAwait(false);
            var reply = new byte[statuses.Length];
            for (var i = 0; i < statuses.Length; i++)
            {
                reply[i] = (byte)statuses[i];
            }

            writer.Send(DataFrameType.AppendReply, header.RequestId, reply);
        }
        catch (Exception e)
        {
            // A defect: no answer is better than a wrong one; the writer times the request out and moves on.
            LogAppendFailed(e);
        }
        finally
        {
            ReturnBody(body);
            connection.Release(header.BodyLength);
        }
    }

    /// <summary>
    /// Applies one placement group's extent writes and answers once they are durable here; a body that does not parse
    /// is answered Invalid and changes nothing. The writes point into the frame body until the apply completes.
    /// </summary>
    private async Task ApplyAsync(DataFrameHeader header, byte[] body, FrameWriter writer, ConnectionState connection)
    {
        try
        {
            var request = ApplyFrame.TryDecode(body.AsMemory(0, header.BodyLength), out var error);
            var reply = request is null
                ? new Converge.Storage.ExtentApplyReply(Converge.Storage.ExtentStatus.Invalid, 0, 0, $"malformed apply: {error}")
                : await applier.ApplyAsync(request.VolumeId, request.Group, request.BlockSizeBytes, request.Writes).ConfigureAwait(false);
            writer.Send(DataFrameType.ApplyReply, header.RequestId, ApplyFrame.EncodeReply(reply));
        }
        catch (Exception e)
        {
            // Faulted is always a safe answer to an apply: destage defers the segment and applies it again later.
            LogApplyFailed(e);
            writer.Send(DataFrameType.ApplyReply, header.RequestId, ApplyFrame.EncodeReply(
                new Converge.Storage.ExtentApplyReply(Converge.Storage.ExtentStatus.Faulted, 0, 0, $"the apply failed: {e.Message}")));
        }
        finally
        {
            ReturnBody(body);
            connection.Release(header.BodyLength);
        }
    }

    private static void ReturnBody(byte[] body)
    {
        LargeBuffers.Return(body);
    }

    /// <summary>Bounds the append bytes of one connection that wait for their commit.</summary>
    private sealed class ConnectionState
    {
        private readonly object _lock = new();
        private long _inFlightBytes;
        private TaskCompletionSource? _released;

        public async ValueTask AdmitAsync(int bytes, CancellationToken cancellationToken)
        {
            while (true)
            {
                Task wait;
                lock (_lock)
                {
                    if (_inFlightBytes == 0 || _inFlightBytes + bytes <= MaxInFlightBytesPerConnection)
                    {
                        _inFlightBytes += bytes;
                        return;
                    }

                    _released ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    wait = _released.Task;
                }

                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        public void Release(int bytes)
        {
            TaskCompletionSource? released;
            lock (_lock)
            {
                _inFlightBytes -= bytes;
                released = _released;
                _released = null;
            }

            released?.TrySetResult();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Data channel listening on {EndPoint}")]
    private partial void LogListening(string endPoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Data channel: accept failed: {Reason}")]
    private partial void LogAcceptFailed(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Data channel: closing the connection from {Peer}: {Reason}")]
    private partial void LogBadFrame(string peer, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Data channel: refused {Peer}, which asked for node '{Node}' with protocol version {Version}: {Status}")]
    private partial void LogRefused(string peer, string node, ushort version, HelloStatus status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Data channel: an append failed unexpectedly; it gets no answer")]
    private partial void LogAppendFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Data channel: an apply failed unexpectedly; answered Faulted")]
    private partial void LogApplyFailed(Exception exception);
}

public static class DataChannelRegistration
{
    /// <summary>Serves the data channel on <paramref name="listener"/> (a storage node).</summary>
    public static IServiceCollection AddDataChannelServer(this IServiceCollection services, DataChannelListener listener) =>
        services.AddSingleton(listener).AddHostedService<DataChannelServer>();

    /// <summary>The data channel's client side (compute nodes' volume controllers append through it; storage nodes' destage applies through it).</summary>
    public static IServiceCollection AddDataChannelClient(this IServiceCollection services) =>
        services.AddSingleton(sp => new DataChannelClient(
            sp.GetRequiredService<ClusterView>().DataEndpointOf, sp.GetRequiredService<ILogger<DataChannelClient>>()));
}
