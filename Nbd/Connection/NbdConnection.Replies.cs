using System.Buffers.Binary;
using System.Text;
using Converge.Nbd.Protocol;

namespace Converge.Nbd.Connection;

internal sealed partial class NbdConnection
{
    private async ValueTask SendSimpleReplyAsync(ulong cookie, NbdError error, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            WriteSimpleHeader(_replyScratch, error, cookie);
            await _stream.WriteAsync(_replyScratch.AsMemory(0, NbdWire.SimpleReplyHeaderBytes), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            CancelConnection();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// An error for one request: a structured NBD_REPLY_TYPE_ERROR with a message when structured replies were
    /// negotiated (required for READ, preferred otherwise), else a simple reply.
    /// </summary>
    private async ValueTask SendErrorAsync(NbdCommand command, ulong cookie, NbdError error, string message, CancellationToken cancellationToken)
    {
        _ = command;
        if (!_structuredReplies)
        {
            await SendSimpleReplyAsync(cookie, error, cancellationToken).ConfigureAwait(false);
            return;
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var messageBytes = Encoding.UTF8.GetBytes(message, 0, Math.Min(message.Length, MaxErrorMessageBytes / 4), _replyScratch, NbdWire.StructuredReplyHeaderBytes + 6);
            WriteStructuredHeader(_replyScratch, NbdReplyType.Error, cookie, 6 + messageBytes);
            BinaryPrimitives.WriteUInt32BigEndian(_replyScratch.AsSpan(NbdWire.StructuredReplyHeaderBytes), (uint)error);
            BinaryPrimitives.WriteUInt16BigEndian(_replyScratch.AsSpan(NbdWire.StructuredReplyHeaderBytes + 4), (ushort)messageBytes);
            await _stream.WriteAsync(_replyScratch.AsMemory(0, NbdWire.StructuredReplyHeaderBytes + 6 + messageBytes), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            CancelConnection();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Sends read data placed at <see cref="ReadPrefixBytes"/> in <paramref name="buffer"/>: one write when the header
    /// fits in front of it, else the header then the data under one hold of the write lock.
    /// </summary>
    private async ValueTask SendReadReplyAsync(Request request, byte[]? buffer, CancellationToken cancellationToken)
    {
        var length = (int)request.LengthBytes;
        var prefix = ReadPrefixBytes(request.LengthBytes);
        if (buffer is null || (_structuredReplies && length == 0))
        {
            // Nothing to send but the header. OFFSET_DATA must carry data, so an empty structured read is NONE.
            await SendHeaderAndDataAsync(request, ReadOnlyMemory<byte>.Empty, length == 0 ? NbdReplyType.None : NbdReplyType.OffsetData, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (prefix == 0)
        {
            await SendHeaderAndDataAsync(request, buffer.AsMemory(0, length), NbdReplyType.OffsetData, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (!_structuredReplies)
        {
            var start = prefix - NbdWire.SimpleReplyHeaderBytes;
            WriteSimpleHeader(buffer.AsSpan(start), NbdError.None, request.Cookie);
            await WriteAsync(buffer.AsMemory(start, NbdWire.SimpleReplyHeaderBytes + length), cancellationToken).ConfigureAwait(false);
            return;
        }

        WriteStructuredHeader(buffer, NbdReplyType.OffsetData, request.Cookie, 8 + length);
        BinaryPrimitives.WriteInt64BigEndian(buffer.AsSpan(NbdWire.StructuredReplyHeaderBytes), request.OffsetBytes);
        await WriteAsync(buffer.AsMemory(0, prefix + length), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask SendHeaderAndDataAsync(Request request, ReadOnlyMemory<byte> data, NbdReplyType structuredType, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int headerBytes;
            if (!_structuredReplies)
            {
                WriteSimpleHeader(_replyScratch, NbdError.None, request.Cookie);
                headerBytes = NbdWire.SimpleReplyHeaderBytes;
            }
            else if (structuredType == NbdReplyType.None)
            {
                WriteStructuredHeader(_replyScratch, NbdReplyType.None, request.Cookie, 0);
                headerBytes = NbdWire.StructuredReplyHeaderBytes;
            }
            else
            {
                WriteStructuredHeader(_replyScratch, NbdReplyType.OffsetData, request.Cookie, 8 + data.Length);
                BinaryPrimitives.WriteInt64BigEndian(_replyScratch.AsSpan(NbdWire.StructuredReplyHeaderBytes), request.OffsetBytes);
                headerBytes = ReadReplyPrefixBytes;
            }

            await _stream.WriteAsync(_replyScratch.AsMemory(0, headerBytes), cancellationToken).ConfigureAwait(false);
            if (!data.IsEmpty)
            {
                await _stream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            CancelConnection();
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>One BLOCK_STATUS chunk for base:allocation, clipped to the request (and to one extent under REQ_ONE).</summary>
    private async ValueTask SendBlockStatusReplyAsync(Request request, IReadOnlyList<NbdExtent> extents, CancellationToken cancellationToken)
    {
        var maxDescriptors = (request.Flags & NbdCommandFlags.RequestOne) != 0 ? 1 : Math.Min(extents.Count, MaxBlockStatusDescriptors);
        var buffer = Rent(NbdWire.StructuredReplyHeaderBytes + 4 + (8 * Math.Max(1, maxDescriptors)));
        try
        {
            var remaining = (long)request.LengthBytes;
            var count = 0;
            var position = NbdWire.StructuredReplyHeaderBytes + 4;
            for (var i = 0; i < extents.Count && count < maxDescriptors && remaining > 0; i++)
            {
                var extent = extents[i];
                if (extent.LengthBytes <= 0)
                {
                    continue;
                }

                var length = Math.Min(extent.LengthBytes, remaining);
                var state = (extent.Hole ? NbdAllocationContext.StateHole : 0) | (extent.Zero ? NbdAllocationContext.StateZero : 0);
                BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(position), (uint)length);
                BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(position + 4), state);
                position += 8;
                remaining -= length;
                count++;
            }

            if (count == 0)
            {
                await SendErrorAsync(NbdCommand.BlockStatus, request.Cookie, NbdError.IoError, "backend reported no extents", cancellationToken).ConfigureAwait(false);
                return;
            }

            WriteStructuredHeader(buffer, NbdReplyType.BlockStatus, request.Cookie, position - NbdWire.StructuredReplyHeaderBytes);
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(NbdWire.StructuredReplyHeaderBytes), NbdAllocationContext.Id);
            await WriteAsync(buffer.AsMemory(0, position), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Return(buffer);
        }
    }

    private static void WriteSimpleHeader(Span<byte> destination, NbdError error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdWire.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
    }

    /// <summary>A final (DONE) structured chunk header: every reply here is a single chunk.</summary>
    private static void WriteStructuredHeader(Span<byte> destination, NbdReplyType type, ulong cookie, int payloadBytes)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, NbdWire.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], 1); // NBD_REPLY_FLAG_DONE
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], (uint)payloadBytes);
    }
}
