using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Converge.Buffers;
using Converge.DataPath;
using Converge.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.DataChannel;

/// <summary>
/// A node's client side of the data channel: one TCP connection per storage node, shared by every volume controller
/// of a compute node (append frames and their answers) or by a storage node's destage (apply frames and theirs). A storage node's endpoint comes from a resolver: in a silo,
/// <see cref="Cluster.ClusterView.DataEndpointOf"/> (the newest active incarnation's published endpoint).
/// </summary>
/// <remarks>
/// Failures read as <see cref="MirrorStatus.Faulted"/>, as a failed grain call did: no active node of that name, a
/// refused or timed-out connection, a closed connection (every request on it), or no answer within
/// <see cref="RequestTimeout"/>. The writer then moves to another pair, as for any mirror failure.
/// </remarks>
public sealed partial class DataChannelClient : IDisposable
{
    /// <summary>How long an append waits for its answer; the segment grain's append call had the same timeout.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long an apply waits for its answer: it writes up to 18 MiB and fdatasyncs, as the replica grain's call allowed.</summary>
    public static readonly TimeSpan ApplyTimeout = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan WatchdogPeriod = TimeSpan.FromMilliseconds(200);

    private readonly Func<string, IPEndPoint?> _endpointOf;
    private readonly ILogger<DataChannelClient> _logger;
    private readonly object _lock = new();
    private readonly Dictionary<string, Connection> _connections = new(StringComparer.Ordinal);
    private readonly Timer _watchdog;
    private bool _disposed;

    /// <param name="endpointOf">A storage node's data endpoint now, or null when it has no active incarnation (<see cref="Cluster.ClusterView.DataEndpointOf"/>).</param>
    public DataChannelClient(Func<string, IPEndPoint?> endpointOf, ILogger<DataChannelClient> logger)
    {
        _endpointOf = endpointOf;
        _logger = logger;
        _watchdog = new Timer(_ => Watch(), null, WatchdogPeriod, WatchdogPeriod);
    }

    /// <summary>
    /// Sends encoded records of one segment, laid end to end, to <paramref name="node"/> and returns its statuses in
    /// record order (as many as the node found records); all <see cref="MirrorStatus.Faulted"/> when it cannot be reached.
    /// </summary>
    /// <param name="records">Borrowed until the returned task completes with any status but Faulted (then it may still be in a send).</param>
    public Task<MirrorStatus[]> AppendAsync(string node, ReadOnlyMemory<byte> records, int count)
    {
        if (records.Length > DataFrameHeader.MaxAppendBodyBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(records), records.Length, $"an append frame holds at most {DataFrameHeader.MaxAppendBodyBytes} bytes");
        }

        var request = new AppendRequest(count, Stopwatch.GetTimestamp());
        return Send(node, DataFrameType.Append, records, request);
    }

    /// <summary>
    /// Sends an apply body (<see cref="ApplyFrame"/>) to <paramref name="node"/> and returns its answer; Faulted, with
    /// the reason, when it cannot be reached or does not answer within <see cref="ApplyTimeout"/>.
    /// </summary>
    /// <param name="body">Borrowed until the returned task completes with any status but Faulted (then it may still be in a send).</param>
    public Task<ExtentApplyReply> ApplyAsync(string node, ReadOnlyMemory<byte> body)
    {
        if (body.Length > DataFrameHeader.MaxApplyBodyBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(body), body.Length, $"an apply frame holds at most {DataFrameHeader.MaxApplyBodyBytes} bytes");
        }

        return Send(node, DataFrameType.Apply, body, new ApplyPending(node, Stopwatch.GetTimestamp()));
    }

    /// <summary>Never throws: a node that cannot be reached, even for want of a socket, fails the request instead.</summary>
    private Task<T> Send<T>(string node, DataFrameType type, ReadOnlyMemory<byte> body, PendingRequest<T> request)
    {
        Connection? connection;
        try
        {
            connection = ConnectionTo(node);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
        {
            request.Fail($"no connection: {e.Message}");
            return request.Task;
        }

        if (connection is null)
        {
            request.Fail("it has no active incarnation with a data endpoint");
            return request.Task;
        }

        return connection.SendAsync(type, body, request);
    }

    public void Dispose()
    {
        List<Connection> connections;
        lock (_lock)
        {
            _disposed = true;
            connections = [.. _connections.Values];
            _connections.Clear();
        }

        _watchdog.Dispose();
        foreach (var connection in connections)
        {
            connection.Fail("the silo is stopping");
        }
    }

    internal static MirrorStatus[] Faulted(int count)
    {
        var statuses = new MirrorStatus[Math.Max(count, 1)];
        statuses.AsSpan().Fill(MirrorStatus.Faulted);
        return statuses;
    }

    /// <summary>The live connection to <paramref name="node"/>'s current endpoint, opened when needed; null when it has none.</summary>
    private Connection? ConnectionTo(string node)
    {
        var endpoint = _endpointOf(node);
        if (endpoint is null)
        {
            return null;
        }

        lock (_lock)
        {
            if (_disposed)
            {
                return null;
            }

            if (_connections.TryGetValue(node, out var existing) && !existing.IsFailed && existing.EndPoint.Equals(endpoint))
            {
                return existing;
            }

            existing?.Fail("the node's endpoint changed");
            var connection = new Connection(this, node, endpoint);
            _connections[node] = connection;
            connection.Start();
            return connection;
        }
    }

    private void Watch()
    {
        List<Connection> connections;
        lock (_lock)
        {
            connections = [.. _connections.Values];
        }

        var now = Stopwatch.GetTimestamp();
        foreach (var connection in connections)
        {
            connection.ExpireRequests(now);
        }
    }

    private void Forget(Connection connection)
    {
        lock (_lock)
        {
            if (_connections.TryGetValue(connection.Node, out var current) && ReferenceEquals(current, connection))
            {
                _connections.Remove(connection.Node);
            }
        }
    }

    /// <summary>One connection to one storage node's data endpoint; requests are answered by id, in any order.</summary>
    private sealed class Connection(DataChannelClient owner, string node, IPEndPoint endPoint)
    {
        private readonly object _lock = new();
        private readonly Dictionary<ulong, IPendingRequest> _pending = [];
        private readonly Socket _socket = new(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        private readonly List<(ulong Id, DataFrameType Type, ReadOnlyMemory<byte> Body)> _waiting = [];
        private FrameWriter? _writer;
        private ulong _nextId;
        private bool _failed;
        private long _lastReceivedTicks = Stopwatch.GetTimestamp();

        public string Node { get; } = node;

        public IPEndPoint EndPoint { get; } = endPoint;

        public bool IsFailed => Volatile.Read(ref _failed);

        public void Start() => _ = RunAsync();

        /// <remarks>Frames sent while the connection opens leave in the order they were sent, once it is open.</remarks>
        public Task<T> SendAsync<T>(DataFrameType type, ReadOnlyMemory<byte> body, PendingRequest<T> request)
        {
            FrameWriter? writer;
            ulong id;
            lock (_lock)
            {
                if (_failed)
                {
                    request.Fail("the connection failed");
                    return request.Task;
                }

                id = ++_nextId;
                _pending.Add(id, request);
                writer = _writer;
                if (writer is null)
                {
                    _waiting.Add((id, type, body));
                    return request.Task;
                }
            }

            // Sent outside the lock: a send that fails at once calls Fail, which takes the client's lock.
            if (!writer.Send(type, id, body))
            {
                Fail("the connection failed");
            }

            return request.Task;
        }

        /// <summary>The handshake succeeded: appends that waited for it leave in order, then later ones go out directly.</summary>
        private void BecomeReady(FrameWriter writer)
        {
            while (true)
            {
                (ulong Id, DataFrameType Type, ReadOnlyMemory<byte> Body)[] waiting;
                lock (_lock)
                {
                    if (_waiting.Count == 0)
                    {
                        _writer = writer;
                        return;
                    }

                    waiting = [.. _waiting];
                    _waiting.Clear();
                }

                foreach (var (id, type, body) in waiting)
                {
                    if (!writer.Send(type, id, body))
                    {
                        Fail("the connection failed");
                        return;
                    }
                }
            }
        }

        private async Task RunAsync()
        {
            try
            {
                using (var connect = new CancellationTokenSource(ConnectTimeout))
                {
                    await _socket.ConnectAsync(EndPoint, connect.Token).ConfigureAwait(false);
                    var writer = new FrameWriter(_socket, e => Fail($"send failed: {e.Message}"));
                    var name = Encoding.UTF8.GetBytes(Node);
                    var hello = new byte[2 + name.Length];
                    BinaryPrimitives.WriteUInt16LittleEndian(hello, DataFrameHeader.ProtocolVersion);
                    name.CopyTo(hello, 2);
                    writer.Send(DataFrameType.Hello, 0, hello);
                    var reader = new FrameReader(_socket);
                    var reply = await reader.ReadAsync(connect.Token).ConfigureAwait(false)
                        ?? throw new InvalidDataException("the node closed the connection during the handshake");
                    var status = reply.Header.Type == DataFrameType.HelloReply && reply.Header.BodyLength == 1 ? (HelloStatus)reply.Body[0] : (HelloStatus)255;
                    ReturnBody(reply.Body);
                    if (status != HelloStatus.Ok)
                    {
                        throw new InvalidDataException($"the node refused the handshake: {status}");
                    }

                    BecomeReady(writer);
                    await ReceiveAsync(reader).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or IOException or InvalidDataException)
            {
                Fail(e is OperationCanceledException ? $"no connection within {ConnectTimeout.TotalSeconds:F0} s" : e.Message);
            }
        }

        private async Task ReceiveAsync(FrameReader reader)
        {
            while (true)
            {
                var frame = await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false)
                    ?? throw new IOException("the node closed the connection");
                Volatile.Write(ref _lastReceivedTicks, Stopwatch.GetTimestamp());
                IPendingRequest? request;
                lock (_lock)
                {
                    _pending.Remove(frame.Header.RequestId, out request);
                }

                try
                {
                    if (frame.Header.Type is not (DataFrameType.AppendReply or DataFrameType.ApplyReply))
                    {
                        throw new InvalidDataException($"a {frame.Header.Type} frame where replies are expected");
                    }

                    // Otherwise answered after its timeout: the caller has already counted this node failed.
                    request?.Complete(frame.Header.Type, frame.Body.AsSpan(0, frame.Header.BodyLength));
                }
                catch (InvalidDataException e)
                {
                    // The connection fails before the request does: a caller that resumes and sends again must not find
                    // this connection still current and lose its request with it.
                    Fail(e.Message);
                    request?.Fail(e.Message);
                    throw;
                }
                finally
                {
                    ReturnBody(frame.Body);
                }
            }
        }

        /// <summary>
        /// Fails requests older than <see cref="RequestTimeout"/>; when the oldest waited that long with nothing
        /// received meanwhile, the node is not answering at all and the connection is closed (the next append reconnects).
        /// </summary>
        public void ExpireRequests(long now)
        {
            List<IPendingRequest>? expired = null;
            var silent = false;
            lock (_lock)
            {
                foreach (var (id, request) in _pending)
                {
                    if (Stopwatch.GetElapsedTime(request.StartedTicks, now) >= request.Timeout)
                    {
                        (expired ??= []).Add(request);
                        _pending.Remove(id);
                        silent |= Stopwatch.GetElapsedTime(Volatile.Read(ref _lastReceivedTicks), now) >= request.Timeout;
                    }
                }
            }

            if (expired is null)
            {
                return;
            }

            foreach (var request in expired)
            {
                request.Fail($"no answer within {request.Timeout.TotalSeconds:F0} s");
            }

            if (silent)
            {
                Fail($"no answer within {expired[0].Timeout.TotalSeconds:F0} s");
            }
        }

        public void Fail(string reason)
        {
            List<IPendingRequest> pending;
            lock (_lock)
            {
                if (_failed)
                {
                    return;
                }

                _failed = true;
                pending = [.. _pending.Values];
                _pending.Clear();
                _waiting.Clear();
            }

            owner.Forget(this);
            owner.LogConnectionFailed(Node, EndPoint.ToString(), reason, pending.Count);
            _socket.Dispose();
            foreach (var request in pending)
            {
                request.Fail(reason);
            }
        }

        private static void ReturnBody(byte[] body)
        {
            LargeBuffers.Return(body);
        }
    }

    /// <summary>A request waiting for its answer, completed from the receive loop or failed by the watchdog or a closed connection.</summary>
    private interface IPendingRequest
    {
        long StartedTicks { get; }

        TimeSpan Timeout { get; }

        /// <exception cref="InvalidDataException">The answer is not one this request can take.</exception>
        void Complete(DataFrameType type, ReadOnlySpan<byte> body);

        void Fail(string reason);
    }

    /// <summary>
    /// An awaiting grain resumes on its own scheduler, so appends complete inline; destage has none, so applies complete
    /// asynchronously, to keep its next batch off the receive loop.
    /// </summary>
    private abstract class PendingRequest<T>(long startedTicks, TimeSpan timeout, TaskCreationOptions options = TaskCreationOptions.None)
        : TaskCompletionSource<T>(options), IPendingRequest
    {
        public long StartedTicks { get; } = startedTicks;

        public TimeSpan Timeout { get; } = timeout;

        public abstract void Complete(DataFrameType type, ReadOnlySpan<byte> body);

        public abstract void Fail(string reason);
    }

    private sealed class AppendRequest(int count, long startedTicks) : PendingRequest<MirrorStatus[]>(startedTicks, RequestTimeout)
    {
        public override void Complete(DataFrameType type, ReadOnlySpan<byte> body)
        {
            if (type != DataFrameType.AppendReply)
            {
                throw new InvalidDataException($"a {type} frame answered an append");
            }

            var statuses = new MirrorStatus[body.Length];
            for (var i = 0; i < statuses.Length; i++)
            {
                statuses[i] = (MirrorStatus)body[i];
            }

            TrySetResult(statuses);
        }

        public override void Fail(string reason) => TrySetResult(Faulted(count));
    }

    private sealed class ApplyPending(string node, long startedTicks)
        : PendingRequest<ExtentApplyReply>(startedTicks, ApplyTimeout, TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public override void Complete(DataFrameType type, ReadOnlySpan<byte> body)
        {
            var reply = type == DataFrameType.ApplyReply ? ApplyFrame.TryDecodeReply(body) : null;
            if (reply is null)
            {
                throw new InvalidDataException($"a {type} frame of {body.Length} bytes answered an apply");
            }

            TrySetResult(reply);
        }

        public override void Fail(string reason) =>
            TrySetResult(new ExtentApplyReply(ExtentStatus.Faulted, 0, 0, $"data channel to {node}: {reason}"));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Data channel to {Node} at {EndPoint} closed: {Reason}; {Pending} appends in flight counted failed")]
    private partial void LogConnectionFailed(string node, string endPoint, string reason, int pending);
}
