using System.Buffers.Binary;
using System.Diagnostics;
using Converge.Nbd.Protocol;
using Converge.Nbd.Server;

namespace Converge.Nbd.Connection;

internal sealed partial class NbdConnection
{
    /// <summary>The longest header of a successful read's reply (structured: chunk header and offset).</summary>
    private const int ReadReplyHeaderBytes = NbdWire.StructuredReplyHeaderBytes + 8;

    /// <summary>Descriptors one BLOCK_STATUS reply carries at most (the spec asks for no more than 2^20).</summary>
    private const int MaxBlockStatusDescriptors = 8192;

    private readonly record struct Request(NbdCommand Command, NbdCommandFlags Flags, ulong Cookie, long OffsetBytes, uint LengthBytes);

    /// <summary>The reader loop: parses requests until NBD_CMD_DISC, end of stream or a protocol violation.</summary>
    private async Task TransmitAsync(CancellationToken cancellationToken)
    {
        var export = _export!;
        while (true)
        {
            await _reader.ReadExactlyAsync(_requestHeader, cancellationToken).ConfigureAwait(false);
            if (!NbdRequestHeader.TryRead(_requestHeader, out var parsed))
            {
                throw new NbdProtocolException("bad request magic");
            }

            var (flags, command, cookie, offset, length) = parsed;

            if (command == NbdCommand.Disconnect)
            {
                return;
            }

            var hasPayload = command == NbdCommand.Write;
            if (hasPayload && length > (uint)_options.MaxPayloadBytes)
            {
                if (length > _options.MaxDiscardedPayloadBytes)
                {
                    throw new NbdProtocolException($"write payload of {length} bytes");
                }

                // Within the discard bound the payload is read through the fixed buffer and dropped, keeping framing.
                await _reader.SkipAsync(length, cancellationToken).ConfigureAwait(false);
                await SendErrorAsync(cookie, NbdError.Invalid, "payload exceeds the maximum block size").ConfigureAwait(false);
                continue;
            }

            await _inFlight.WaitAsync(cancellationToken).ConfigureAwait(false);
            var dispatched = false;
            try
            {
                var (error, message) = Validate(export, command, flags, offset, length);
                if (error != NbdError.None)
                {
                    if (hasPayload)
                    {
                        await _reader.SkipAsync(length, cancellationToken).ConfigureAwait(false);
                    }

                    await SendErrorAsync(cookie, error, message).ConfigureAwait(false);
                    continue;
                }

                var request = new Request(command, flags, cookie, (long)offset, length);
                var bufferBytes = command switch
                {
                    NbdCommand.Read or NbdCommand.Write => (int)length,
                    _ => 0,
                };
                var reservedConnection = await _connectionBudget.ReserveAsync(bufferBytes, cancellationToken).ConfigureAwait(false);
                long reservedServer;
                try
                {
                    reservedServer = await _serverBudget.ReserveAsync(bufferBytes, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    _connectionBudget.Release(reservedConnection);
                    throw;
                }

                var buffer = bufferBytes > 0 ? Rent(bufferBytes) : null;
                try
                {
                    if (hasPayload)
                    {
                        await _reader.ReadExactlyAsync(buffer.AsMemory(0, (int)length), cancellationToken).ConfigureAwait(false);
                    }
                }
                catch
                {
                    ReleaseBuffers(buffer, reservedConnection, reservedServer);
                    throw;
                }

                dispatched = true;
                _ = ProcessAsync(export, request, buffer, reservedConnection, reservedServer, cancellationToken);
            }
            finally
            {
                if (!dispatched)
                {
                    _inFlight.Release();
                }
            }
        }
    }

    private (NbdError Error, string Message) Validate(INbdExport export, NbdCommand command, NbdCommandFlags flags, ulong offset, uint length)
    {
        var allowed = command switch
        {
            NbdCommand.Read => NbdCommandFlags.Fua | (_structuredReplies ? NbdCommandFlags.DontFragment : 0),
            NbdCommand.Write or NbdCommand.Flush or NbdCommand.Trim => NbdCommandFlags.Fua,
            NbdCommand.WriteZeroes => NbdCommandFlags.Fua | NbdCommandFlags.NoHole | NbdCommandFlags.FastZero,
            NbdCommand.BlockStatus => NbdCommandFlags.Fua | NbdCommandFlags.RequestOne,
            _ => (NbdCommandFlags?)null,
        };
        if (allowed is null)
        {
            return (NbdError.Invalid, $"unknown command {(ushort)command}");
        }

        if ((flags & ~allowed.Value) != 0)
        {
            return (NbdError.Invalid, $"flags 0x{(ushort)flags:x4} not valid for this command");
        }

        if (command == NbdCommand.Flush)
        {
            return (NbdError.None, "");
        }

        var isWrite = command is NbdCommand.Write or NbdCommand.WriteZeroes;
        var size = (ulong)export.SizeBytes;
        if (offset > size || length > size - offset)
        {
            return (isWrite ? NbdError.NoSpace : NbdError.Invalid, "range exceeds the export size");
        }

        if (command == NbdCommand.Read && length > (uint)_options.MaxPayloadBytes)
        {
            return (NbdError.Invalid, "read length exceeds the maximum block size");
        }

        if (command == NbdCommand.BlockStatus)
        {
            if (!_allocationContextSelected)
            {
                return (NbdError.Invalid, "no metadata context was negotiated");
            }

            if (length == 0)
            {
                return (NbdError.Invalid, "zero-length block status");
            }
        }

        return (NbdError.None, "");
    }

    /// <summary>
    /// Runs one request and replies. Never throws: it is not awaited by the reader. It starts on the reader's thread and
    /// hands the reader back at its first incomplete await (every backend call but a trivial one), which saves a
    /// thread-pool hop per request over yielding first.
    /// </summary>
    private async Task ProcessAsync(INbdExport export, Request request, byte[]? buffer, long reservedConnection, long reservedServer, CancellationToken cancellationToken)
    {
        try
        {
            var status = NbdIoStatus.Ok;
            try
            {
                switch (request.Command)
                {
                    case NbdCommand.Read:
                        Debug.Assert(buffer is not null);
                        status = request.LengthBytes == 0 ? NbdIoStatus.Ok : await export.ReadAsync(request.OffsetBytes, buffer.AsMemory(0, (int)request.LengthBytes), cancellationToken).ConfigureAwait(false);
                        if (status == NbdIoStatus.Ok)
                        {
                            await SendReadReplyAsync(request, buffer).ConfigureAwait(false);
                            return;
                        }

                        break;
                    case NbdCommand.Write:
                        status = request.LengthBytes == 0 ? NbdIoStatus.Ok : await export.WriteAsync(request.OffsetBytes, buffer.AsMemory(0, (int)request.LengthBytes), cancellationToken).ConfigureAwait(false);
                        break;
                    case NbdCommand.Flush:
                        status = await export.FlushAsync(cancellationToken).ConfigureAwait(false);
                        break;
                    case NbdCommand.Trim:
                        status = request.LengthBytes == 0 ? NbdIoStatus.Ok : await export.TrimAsync(request.OffsetBytes, request.LengthBytes, cancellationToken).ConfigureAwait(false);
                        break;
                    case NbdCommand.WriteZeroes:
                        // Zeroes are logged tombstones in the backend: as fast as any write, so FAST_ZERO is honoured.
                        var mayDeallocate = (request.Flags & NbdCommandFlags.NoHole) == 0;
                        status = request.LengthBytes == 0 ? NbdIoStatus.Ok : await export.WriteZeroesAsync(request.OffsetBytes, request.LengthBytes, mayDeallocate, cancellationToken).ConfigureAwait(false);
                        break;
                    case NbdCommand.BlockStatus:
                        var (blockStatus, extents) = await export.GetBlockStatusAsync(request.OffsetBytes, request.LengthBytes, cancellationToken).ConfigureAwait(false);
                        status = blockStatus;
                        if (status == NbdIoStatus.Ok)
                        {
                            await SendBlockStatusReplyAsync(request, extents).ConfigureAwait(false);
                            return;
                        }

                        break;
                    default:
                        throw new UnreachableException($"command {request.Command} passed validation");
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                status = NbdIoStatus.Shutdown;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                NbdLog.BackendFailed(_logger, _id, request.Command.ToString(), ex);
                status = NbdIoStatus.IoError;
            }

            if (status == NbdIoStatus.Ok)
            {
                await SendSimpleReplyAsync(request.Cookie, NbdError.None).ConfigureAwait(false);
            }
            else
            {
                await SendErrorAsync(request.Cookie, ToError(status), "request failed: " + status).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // The reply could not be sent: the connection is beyond use.
            CancelConnection();
        }
        finally
        {
            ReleaseBuffers(buffer, reservedConnection, reservedServer);
            _inFlight.Release();
        }
    }

    private void ReleaseBuffers(byte[]? buffer, long reservedConnection, long reservedServer)
    {
        if (buffer is not null)
        {
            Return(buffer);
        }

        _serverBudget.Release(reservedServer);
        _connectionBudget.Release(reservedConnection);
    }

    private static NbdError ToError(NbdIoStatus status) => status switch
    {
        NbdIoStatus.NotPermitted => NbdError.NotPermitted,
        NbdIoStatus.NoMemory => NbdError.NoMemory,
        NbdIoStatus.Invalid => NbdError.Invalid,
        NbdIoStatus.NoSpace => NbdError.NoSpace,
        NbdIoStatus.Shutdown => NbdError.Shutdown,
        _ => NbdError.IoError,
    };
}
