using System.Buffers.Binary;
using System.Text;
using Converge.Nbd.Protocol;
using Converge.Nbd.Server;

namespace Converge.Nbd.Connection;

internal sealed partial class NbdConnection
{
    private const int MinimumBlockBytes = 1;

    private async Task<OptionOutcome> HandleInfoOrGoAsync(NbdOption option, byte[] data, CancellationToken cancellationToken)
    {
        // Data: u32 name length, name, u16 request count, u16 x count information requests.
        if (data.Length < 6 || ReadU32(data, 0) > (uint)(data.Length - 6))
        {
            await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "malformed request: name length exceeds the option", cancellationToken).ConfigureAwait(false);
            return OptionOutcome.Continue;
        }

        var nameBytes = (int)ReadU32(data, 0);
        var requestCount = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + nameBytes));
        if (6 + nameBytes + (2 * requestCount) != data.Length)
        {
            await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "malformed request: information request count does not match the option length", cancellationToken).ConfigureAwait(false);
            return OptionOutcome.Continue;
        }

        var (name, error) = DecodeName(data.AsSpan(4, nameBytes));
        if (error is not null)
        {
            await SendOptionErrorAsync(option, error.Value.Reply, error.Value.Message, cancellationToken).ConfigureAwait(false);
            return OptionOutcome.Continue;
        }

        var wantName = false;
        var wantDescription = false;
        for (var i = 0; i < requestCount; i++)
        {
            var info = (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(6 + nameBytes + (2 * i)));
            wantName |= info == NbdInfoType.Name;
            wantDescription |= info == NbdInfoType.Description;
        }

        var result = await OpenExportAsync(name, cancellationToken, describeOnly: option != NbdOption.Go).ConfigureAwait(false);
        if (result.Status != NbdOpenStatus.Ok)
        {
            var reply = result.Status switch
            {
                NbdOpenStatus.UnknownExport => NbdOptionReply.ErrUnknown,
                NbdOpenStatus.PolicyRefused => NbdOptionReply.ErrPolicy,
                _ => NbdOptionReply.ErrShutdown,
            };
            var message = result.Message.Length > 0 ? result.Message : $"export '{name}': {result.Status}";
            await SendOptionErrorAsync(option, reply, message, cancellationToken).ConfigureAwait(false);
            return OptionOutcome.Continue;
        }

        var export = result.Export!;
        var keep = false;
        try
        {
            var transmissionFlags = TransmissionFlags;
            var exportInfo = new byte[12];
            BinaryPrimitives.WriteUInt16BigEndian(exportInfo, (ushort)NbdInfoType.Export);
            BinaryPrimitives.WriteInt64BigEndian(exportInfo.AsSpan(2), export.SizeBytes);
            BinaryPrimitives.WriteUInt16BigEndian(exportInfo.AsSpan(10), (ushort)transmissionFlags);
            await SendOptionReplyAsync(option, NbdOptionReply.Info, exportInfo, cancellationToken).ConfigureAwait(false);

            // Block sizes are sent even unasked: the minimum of 1 is the protocol default, so no client is bound by more.
            var blockSize = new byte[14];
            BinaryPrimitives.WriteUInt16BigEndian(blockSize, (ushort)NbdInfoType.BlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), MinimumBlockBytes);
            BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), (uint)Math.Max(512, export.BlockSizeBytes));
            BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), (uint)_options.MaxPayloadBytes);
            await SendOptionReplyAsync(option, NbdOptionReply.Info, blockSize, cancellationToken).ConfigureAwait(false);

            if (wantName)
            {
                await SendInfoStringAsync(option, NbdInfoType.Name, export.Name, cancellationToken).ConfigureAwait(false);
            }

            if (wantDescription && export.Description.Length > 0)
            {
                await SendInfoStringAsync(option, NbdInfoType.Description, export.Description, cancellationToken).ConfigureAwait(false);
            }

            await SendOptionReplyAsync(option, NbdOptionReply.Ack, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
            if (option != NbdOption.Go)
            {
                return OptionOutcome.Continue;
            }

            keep = true;
            _export = export;
            _allocationContextSelected &= _metaContextExport == name;
            NbdLog.Transmission(_logger, _id, name, export.SizeBytes, _structuredReplies);
            return OptionOutcome.Transmit;
        }
        finally
        {
            if (!keep)
            {
                await export.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async ValueTask SendInfoStringAsync(NbdOption option, NbdInfoType type, string value, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        if (bytes.Length > NbdWire.MaxStringBytes)
        {
            return;
        }

        var info = new byte[2 + bytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)type);
        bytes.CopyTo(info, 2);
        await SendOptionReplyAsync(option, NbdOptionReply.Info, info, cancellationToken).ConfigureAwait(false);
    }

    private async Task HandleMetaContextAsync(NbdOption option, byte[] data, CancellationToken cancellationToken)
    {
        var isSet = option == NbdOption.SetMetaContext;
        if (isSet)
        {
            // A SET replaces the selection even when it fails.
            _allocationContextSelected = false;
            _metaContextExport = null;
            if (!_structuredReplies)
            {
                await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "structured replies must be negotiated first", cancellationToken).ConfigureAwait(false);
                return;
            }
        }

        // Data: u32 name length, name, u32 query count, then u32 length + query for each.
        if (data.Length < 8 || ReadU32(data, 0) > (uint)(data.Length - 8))
        {
            await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "malformed request: name length exceeds the option", cancellationToken).ConfigureAwait(false);
            return;
        }

        var nameBytes = (int)ReadU32(data, 0);
        var (name, error) = DecodeName(data.AsSpan(4, nameBytes));
        if (error is not null)
        {
            await SendOptionErrorAsync(option, error.Value.Reply, error.Value.Message, cancellationToken).ConfigureAwait(false);
            return;
        }

        var queryCount = ReadU32(data, 4 + nameBytes);
        var position = 8 + nameBytes;
        var matchesAllocation = queryCount == 0 && !isSet;
        for (var i = 0u; i < queryCount; i++)
        {
            if (data.Length - position < 4 || ReadU32(data, position) > (uint)(data.Length - position - 4))
            {
                await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "malformed request: query runs past the option", cancellationToken).ConfigureAwait(false);
                return;
            }

            var queryBytes = (int)ReadU32(data, position);
            var (query, queryError) = DecodeName(data.AsSpan(position + 4, queryBytes));
            position += 4 + queryBytes;
            if (queryError is not null || !query.Contains(':', StringComparison.Ordinal))
            {
                await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "a query must be a namespace, a colon and a leaf name", cancellationToken).ConfigureAwait(false);
                return;
            }

            matchesAllocation |= query == NbdAllocationContext.Name || (!isSet && query == NbdAllocationContext.Namespace);
        }

        if (position != data.Length)
        {
            await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, "malformed request: bytes after the last query", cancellationToken).ConfigureAwait(false);
            return;
        }

        if (matchesAllocation)
        {
            var contextName = Encoding.UTF8.GetBytes(NbdAllocationContext.Name);
            var reply = new byte[4 + contextName.Length];
            BinaryPrimitives.WriteUInt32BigEndian(reply, isSet ? NbdAllocationContext.Id : 0);
            contextName.CopyTo(reply, 4);
            await SendOptionReplyAsync(option, NbdOptionReply.MetaContext, reply, cancellationToken).ConfigureAwait(false);
        }

        if (isSet)
        {
            _metaContextExport = name;
            _allocationContextSelected = matchesAllocation;
        }

        await SendOptionReplyAsync(option, NbdOptionReply.Ack, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
    }
}
