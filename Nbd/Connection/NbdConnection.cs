using System.Buffers;
using System.Buffers.Binary;
using Converge.Nbd.Protocol;
using Converge.Nbd.Server;
using Microsoft.Extensions.Logging;

namespace Converge.Nbd.Connection;

/// <summary>
/// One client: the handshake, then the transmission loop. A single reader task parses requests and dispatches
/// them; each request runs concurrently (bounded by <see cref="NbdServerOptions.MaxInFlightRequestsPerConnection"/>
/// and by byte budgets) and hands its reply to the <see cref="ReplyWriter"/>, so replies go out in completion order,
/// those completed together in one write.
/// </summary>
internal sealed partial class NbdConnection : IAsyncDisposable
{
    private readonly long _id;
    private readonly Stream _stream;
    private readonly NbdStreamReader _reader;
    private readonly INbdBackend _backend;
    private readonly NbdServerOptions _options;
    private readonly ByteBudget _serverBudget;
    private readonly ByteBudget _connectionBudget;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _inFlight;

    // Owned by the reader task.
    private readonly byte[] _requestHeader = new byte[NbdWire.RequestHeaderBytes];

    private CancellationTokenSource? _connectionCancellation;
    private ReplyWriter? _replies;
    private INbdExport? _export;
    private bool _structuredReplies;
    private bool _noZeroes;
    private string? _metaContextExport;
    private bool _allocationContextSelected;

    private const int MaxErrorMessageBytes = 256;

    public NbdConnection(long id, Stream stream, INbdBackend backend, NbdServerOptions options, ByteBudget serverBudget, ILogger logger)
    {
        _id = id;
        _stream = stream;
        _reader = new NbdStreamReader(stream);
        _backend = backend;
        _options = options;
        _serverBudget = serverBudget;
        _connectionBudget = new ByteBudget(options.MaxBufferedBytesPerConnection);
        _logger = logger;
        _inFlight = new SemaphoreSlim(options.MaxInFlightRequestsPerConnection, options.MaxInFlightRequestsPerConnection);
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var connectionCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _connectionCancellation = connectionCancellation;
        var token = connectionCancellation.Token;
        string reason = "client disconnected";
        try
        {
            bool transmit;
            using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(token))
            {
                deadline.CancelAfter(_options.HandshakeDeadline);
                try
                {
                    transmit = await HandshakeAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (deadline.IsCancellationRequested && !token.IsCancellationRequested)
                {
                    reason = "handshake deadline passed";
                    return;
                }
            }

            if (transmit)
            {
                _replies = new ReplyWriter(_stream, token, CancelConnection);
                await TransmitAsync(token).ConfigureAwait(false);
                reason = "client sent NBD_CMD_DISC";
            }
            else
            {
                reason = "handshake ended without transmission";
            }
        }
        catch (NbdProtocolException ex)
        {
            reason = ex.Message;
            NbdLog.ProtocolViolation(_logger, _id, ex.Message);
        }
        catch (EndOfStreamException)
        {
            reason = "client closed the connection";
        }
        catch (IOException ex)
        {
            reason = "connection failed: " + ex.Message;
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            reason = cancellationToken.IsCancellationRequested ? "server stopping" : "connection cancelled";
        }
        finally
        {
            await DrainAsync().ConfigureAwait(false);
            NbdLog.ConnectionClosed(_logger, _id, reason);
            _connectionCancellation = null;
        }
    }

    /// <summary>Waits for every dispatched request to reply (bounded by the drain timeout), then releases the export.</summary>
    private async Task DrainAsync()
    {
        var max = _options.MaxInFlightRequestsPerConnection;
        using var timeout = new CancellationTokenSource(_options.DrainTimeout);
        var acquired = 0;
        try
        {
            for (; acquired < max; acquired++)
            {
                await _inFlight.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            NbdLog.DrainTimedOut(_logger, _id, max - acquired);
            CancelConnection();
        }

        // Replies buffered by the last requests leave before the stream is closed.
        if (_replies is { } replies && !await replies.DrainAsync(timeout.Token).ConfigureAwait(false))
        {
            CancelConnection();
        }

        var export = _export;
        _export = null;
        if (export is not null)
        {
            await export.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync()
    {
        // The semaphores are not disposed: a request abandoned by the drain timeout may still release them.
        _reader.Dispose();
        return ValueTask.CompletedTask;
    }

    private void CancelConnection()
    {
        try
        {
            _connectionCancellation?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The connection already ended.
        }
    }

    private static byte[] Rent(int bytes) => ArrayPool<byte>.Shared.Rent(bytes);

    private static void Return(byte[] buffer) => ArrayPool<byte>.Shared.Return(buffer);

    private static uint ReadU32(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt32BigEndian(span[offset..]);
}
