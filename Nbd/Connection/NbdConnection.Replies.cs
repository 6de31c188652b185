using System.Buffers.Binary;
using System.Text;
using Converge.Nbd.Protocol;

namespace Converge.Nbd.Connection;

internal sealed partial class NbdConnection
{
    private ValueTask SendSimpleReplyAsync(ulong cookie, NbdError error)
    {
        Span<byte> header = stackalloc byte[NbdWire.SimpleReplyHeaderBytes];
        WriteSimpleHeader(header, error, cookie);
        return SendAsync(header, default);
    }

    /// <summary>
    /// An error for one request: a structured NBD_REPLY_TYPE_ERROR with a message when structured replies were
    /// negotiated (required for READ, preferred otherwise), else a simple reply.
    /// </summary>
    private ValueTask SendErrorAsync(ulong cookie, NbdError error, string message)
    {
        if (!_structuredReplies)
        {
            return SendSimpleReplyAsync(cookie, error);
        }

        Span<byte> reply = stackalloc byte[NbdWire.StructuredReplyHeaderBytes + 6 + MaxErrorMessageBytes];
        var messageBytes = Encoding.UTF8.GetBytes(message.AsSpan(0, Math.Min(message.Length, MaxErrorMessageBytes / 4)), reply[(NbdWire.StructuredReplyHeaderBytes + 6)..]);
        WriteStructuredHeader(reply, NbdReplyType.Error, cookie, 6 + messageBytes);
        BinaryPrimitives.WriteUInt32BigEndian(reply[NbdWire.StructuredReplyHeaderBytes..], (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(reply[(NbdWire.StructuredReplyHeaderBytes + 4)..], (ushort)messageBytes);
        return SendAsync(reply[..(NbdWire.StructuredReplyHeaderBytes + 6 + messageBytes)], default);
    }

    /// <summary>
    /// Sends read data held at the start of <paramref name="buffer"/>: a small read is copied with its header as one
    /// reply; a large one is written from the buffer after its header.
    /// </summary>
    private ValueTask SendReadReplyAsync(Request request, byte[]? buffer)
    {
        var length = (int)request.LengthBytes;
        Span<byte> header = stackalloc byte[ReadReplyHeaderBytes];
        if (buffer is null || (_structuredReplies && length == 0))
        {
            // Nothing to send but the header. OFFSET_DATA must carry data, so an empty structured read is NONE.
            var headerBytes = WriteReadHeader(header, request, length == 0 ? NbdReplyType.None : NbdReplyType.OffsetData, length);
            return SendAsync(header[..headerBytes], default);
        }

        if (ReadReplyHeaderBytes + length > ReplyWriter.MaxCopiedBytes)
        {
            var largeHeader = new byte[ReadReplyHeaderBytes];
            var headerBytes = WriteReadHeader(largeHeader, request, NbdReplyType.OffsetData, length);
            return _replies!.SendLargeAsync(largeHeader.AsMemory(0, headerBytes), buffer.AsMemory(0, length));
        }

        var n = WriteReadHeader(header, request, NbdReplyType.OffsetData, length);
        return SendAsync(header[..n], buffer.AsSpan(0, length));
    }

    /// <summary>The reply header of a successful read of <paramref name="length"/> bytes; returns its length.</summary>
    private int WriteReadHeader(Span<byte> destination, Request request, NbdReplyType structuredType, int length)
    {
        if (!_structuredReplies)
        {
            WriteSimpleHeader(destination, NbdError.None, request.Cookie);
            return NbdWire.SimpleReplyHeaderBytes;
        }

        if (structuredType == NbdReplyType.None)
        {
            WriteStructuredHeader(destination, NbdReplyType.None, request.Cookie, 0);
            return NbdWire.StructuredReplyHeaderBytes;
        }

        WriteStructuredHeader(destination, NbdReplyType.OffsetData, request.Cookie, 8 + length);
        BinaryPrimitives.WriteInt64BigEndian(destination[NbdWire.StructuredReplyHeaderBytes..], request.OffsetBytes);
        return ReadReplyHeaderBytes;
    }

    /// <summary>
    /// Hands one reply to the reply writer; it is written at once when no other request is in flight, else with the
    /// replies completed around it.
    /// </summary>
    private ValueTask SendAsync(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second) =>
        _replies!.SendAsync(first, second, alone: _inFlight.CurrentCount >= _options.MaxInFlightRequestsPerConnection - 1);

    /// <summary>One BLOCK_STATUS chunk for base:allocation, clipped to the request (and to one extent under REQ_ONE).</summary>
    private async ValueTask SendBlockStatusReplyAsync(Request request, IReadOnlyList<NbdExtent> extents)
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
                await SendErrorAsync(request.Cookie, NbdError.IoError, "backend reported no extents").ConfigureAwait(false);
                return;
            }

            WriteStructuredHeader(buffer, NbdReplyType.BlockStatus, request.Cookie, position - NbdWire.StructuredReplyHeaderBytes);
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(NbdWire.StructuredReplyHeaderBytes), NbdAllocationContext.Id);
            if (position <= ReplyWriter.MaxCopiedBytes)
            {
                await SendAsync(buffer.AsSpan(0, position), default).ConfigureAwait(false);
            }
            else
            {
                await _replies!.SendLargeAsync(buffer.AsMemory(0, position), ReadOnlyMemory<byte>.Empty).ConfigureAwait(false);
            }
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
