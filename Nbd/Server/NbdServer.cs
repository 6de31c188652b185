using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Converge.Nbd.Connection;
using Microsoft.Extensions.Logging;

namespace Converge.Nbd.Server;

/// <summary>
/// A network block device server: accepts TCP connections on one endpoint and serves the exports of an
/// <see cref="INbdBackend"/> over the NBD protocol (fixed newstyle handshake). Start with
/// <see cref="StartAsync"/>, stop with <see cref="StopAsync"/>.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly INbdBackend _backend;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly ByteBudget _serverBudget;
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task? _acceptLoop;
    private long _nextConnectionId;
    private int _activeConnections;

    public NbdServer(INbdBackend backend, NbdServerOptions options, ILogger<NbdServer> logger)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        options.Validate();
        _backend = backend;
        _options = options;
        _logger = logger;
        _serverBudget = new ByteBudget(options.MaxBufferedBytes);
    }

    /// <summary>The bound endpoint (with the real port when started on port 0).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("The NBD server is not started."));

    /// <summary>Connections currently served (handshake or transmission).</summary>
    public int ActiveConnections => Volatile.Read(ref _activeConnections);

    /// <summary>Counts one more connection unless the cap is reached; the count never reads above the cap.</summary>
    private bool TryAdmitConnection()
    {
        while (true)
        {
            var current = Volatile.Read(ref _activeConnections);
            if (current >= _options.MaxConnections)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _activeConnections, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>Buffer bytes currently reserved by all connections; zero when the server is idle.</summary>
    public long BufferedBytes => _options.MaxBufferedBytes - _serverBudget.AvailableBytes;

    /// <summary>Binds and starts accepting. Completes once the endpoint is bound.</summary>
    public Task StartAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        cancellationToken.ThrowIfCancellationRequested();
        if (_listener is not null)
        {
            throw new InvalidOperationException("The NBD server is already started.");
        }

        var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endPoint);
            listener.Listen(512);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        NbdLog.Listening(_logger, listener.LocalEndPoint!);
        _acceptLoop = AcceptLoopAsync(listener);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops accepting, cancels every connection (in-flight requests see the cancellation and are answered with
    /// ESHUTDOWN where the backend reports it) and waits for them to close, or for <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listener is null || _stopping.IsCancellationRequested)
        {
            return;
        }

        var endPoint = _listener.LocalEndPoint!;
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        await Task.WhenAll(_connections.Values).WaitAsync(cancellationToken).ConfigureAwait(false);
        NbdLog.Stopped(_logger, endPoint);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(_options.DrainTimeout);
        try
        {
            await StopAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Connections that outlive the drain timeout are abandoned; their sockets are already cancelled.
        }

        _stopping.Dispose();
    }

    /// <summary>
    /// Serves one client over an already-connected duplex stream (handshake, then transmission) until it
    /// disconnects. The server need not be started; this is the seam for tests and fuzzing. The stream is not
    /// disposed.
    /// </summary>
    public async Task ServeStreamAsync(Stream stream, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var id = Interlocked.Increment(ref _nextConnectionId);
        await using var connection = new NbdConnection(id, stream, _backend, _options, _serverBudget, _logger);
        await connection.RunAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ObjectDisposedException)
            {
                break;
            }
            catch (SocketException ex) when (!token.IsCancellationRequested)
            {
                // A connection reset before accept completes is routine; anything else is logged and retried.
                if (ex.SocketErrorCode != SocketError.ConnectionReset)
                {
                    NbdLog.AcceptFailed(_logger, listener.LocalEndPoint!, ex);
                }

                continue;
            }
            catch (SocketException)
            {
                break;
            }

            if (!TryAdmitConnection())
            {
                NbdLog.ConnectionLimit(_logger, client.RemoteEndPoint, _options.MaxConnections);
                client.Dispose();
                continue;
            }

            var id = Interlocked.Increment(ref _nextConnectionId);
            var served = ServeSocketAsync(id, client, token);
            _connections[id] = served;
            if (served.IsCompleted)
            {
                _connections.TryRemove(id, out _);
            }
        }
    }

    private async Task ServeSocketAsync(long id, Socket client, CancellationToken cancellationToken)
    {
        await Task.Yield(); // leave the accept loop before the first read
        try
        {
            client.NoDelay = true;
            NbdLog.ConnectionOpened(_logger, id, client.RemoteEndPoint);
            await using var stream = new NetworkStream(client, ownsSocket: true);
            await using var connection = new NbdConnection(id, stream, _backend, _options, _serverBudget, _logger);
            await connection.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A connection never takes the server down; its failure is logged and it is closed.
            NbdLog.ConnectionFailed(_logger, id, ex);
        }
        finally
        {
            client.Dispose();
            Interlocked.Decrement(ref _activeConnections);
            _connections.TryRemove(id, out _);
        }
    }
}
