using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Converge.DataPath;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.DataChannel;

/// <summary>
/// A compute node's side of the data channel: one TCP connection per storage node, shared by every volume controller
/// of this node, carrying append frames and their answers. A storage node's endpoint comes from a resolver: in a silo,
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

        var connection = ConnectionTo(node);
        return connection is null ? Task.FromResult(Faulted(count)) : connection.AppendAsync(records, count);
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
        private readonly Dictionary<ulong, PendingRequest> _pending = [];
        private readonly Socket _socket = new(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        private readonly List<(ulong Id, ReadOnlyMemory<byte> Records)> _waiting = [];
        private FrameWriter? _writer;
        private ulong _nextId;
        private bool _failed;
        private long _lastReceivedTicks = Stopwatch.GetTimestamp();

        public string Node { get; } = node;

        public IPEndPoint EndPoint { get; } = endPoint;

        public bool IsFailed => Volatile.Read(ref _failed);

        public void Start() => _ = RunAsync();

        /// <remarks>Appends made while the connection opens leave in the order they were made, once it is open.</remarks>
        public Task<MirrorStatus[]> AppendAsync(ReadOnlyMemory<byte> records, int count)
        {
            var request = new PendingRequest(count, Stopwatch.GetTimestamp());
            FrameWriter? writer;
            ulong id;
            lock (_lock)
            {
                if (_failed)
                {
                    return Task.FromResult(Faulted(count));
                }

                id = ++_nextId;
                _pending.Add(id, request);
                writer = _writer;
                if (writer is null)
                {
                    _waiting.Add((id, records));
                    return request.Task;
                }
            }

            // Sent outside the lock: a send that fails at once calls Fail, which takes the client's lock.
            if (!writer.Send(DataFrameType.Append, id, records))
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
                (ulong Id, ReadOnlyMemory<byte> Records)[] waiting;
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

                foreach (var (id, records) in waiting)
                {
                    if (!writer.Send(DataFrameType.Append, id, records))
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
                if (frame.Header.Type != DataFrameType.AppendReply)
                {
                    ReturnBody(frame.Body);
                    throw new InvalidDataException($"a {frame.Header.Type} frame where append replies are expected");
                }

                PendingRequest? request;
                lock (_lock)
                {
                    _pending.Remove(frame.Header.RequestId, out request);
                }

                if (request is not null)
                {
                    var statuses = new MirrorStatus[frame.Header.BodyLength];
                    for (var i = 0; i < statuses.Length; i++)
                    {
                        statuses[i] = (MirrorStatus)frame.Body[i];
                    }

                    request.TrySetResult(statuses);
                }

                // Otherwise answered after its timeout: the writer has already counted this mirror failed.
                ReturnBody(frame.Body);
            }
        }

        /// <summary>
        /// Fails requests older than <see cref="RequestTimeout"/>; when the oldest waited that long with nothing
        /// received meanwhile, the node is not answering at all and the connection is closed (the next append reconnects).
        /// </summary>
        public void ExpireRequests(long now)
        {
            List<PendingRequest>? expired = null;
            var silent = false;
            lock (_lock)
            {
                foreach (var (id, request) in _pending)
                {
                    if (Stopwatch.GetElapsedTime(request.StartedTicks, now) >= RequestTimeout)
                    {
                        (expired ??= []).Add(request);
                        _pending.Remove(id);
                        silent |= Stopwatch.GetElapsedTime(Volatile.Read(ref _lastReceivedTicks), now) >= RequestTimeout;
                    }
                }
            }

            if (expired is null)
            {
                return;
            }

            foreach (var request in expired)
            {
                request.TrySetResult(Faulted(request.Count));
            }

            if (silent)
            {
                Fail($"no answer within {RequestTimeout.TotalSeconds:F0} s");
            }
        }

        public void Fail(string reason)
        {
            List<PendingRequest> pending;
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
                request.TrySetResult(Faulted(request.Count));
            }
        }

        private static void ReturnBody(byte[] body)
        {
            if (body.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(body);
            }
        }
    }

    /// <summary>An append waiting for its answer. Completed from the receive loop; the awaiting grain resumes on its own scheduler.</summary>
    private sealed class PendingRequest(int count, long startedTicks) : TaskCompletionSource<MirrorStatus[]>
    {
        public int Count { get; } = count;

        public long StartedTicks { get; } = startedTicks;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Data channel to {Node} at {EndPoint} closed: {Reason}; {Pending} appends in flight counted failed")]
    private partial void LogConnectionFailed(string node, string endPoint, string reason, int pending);
}
