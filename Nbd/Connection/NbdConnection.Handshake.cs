using System.Buffers.Binary;
using System.Text;
using Converge.Nbd.Protocol;
using Converge.Nbd.Server;

namespace Converge.Nbd.Connection;

internal sealed partial class NbdConnection
{
    private const NbdClientFlags KnownClientFlags = NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes;

    private const NbdTransmissionFlags BaseTransmissionFlags =
        NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua |
        NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero |
        NbdTransmissionFlags.CanMultiConn;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Transmission flags for this connection: DF only with structured replies, since we never fragment.</summary>
    private NbdTransmissionFlags TransmissionFlags =>
        BaseTransmissionFlags | (_structuredReplies ? NbdTransmissionFlags.SendDf : NbdTransmissionFlags.None);

    /// <summary>Runs option haggling; true when the client entered transmission with an open export.</summary>
    private async Task<bool> HandshakeAsync(CancellationToken cancellationToken)
    {
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdWire.InitPasswd);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), (ushort)(NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes));
        await _stream.WriteAsync(greeting, cancellationToken).ConfigureAwait(false);

        var header = new byte[NbdWire.OptionHeaderBytes];
        await _reader.ReadExactlyAsync(header.AsMemory(0, 4), cancellationToken).ConfigureAwait(false);
        var clientFlags = (NbdClientFlags)ReadU32(header, 0);
        if ((clientFlags & ~KnownClientFlags) != 0)
        {
            throw new NbdProtocolException($"unknown client flags 0x{(uint)clientFlags:x8}");
        }

        _noZeroes = (clientFlags & NbdClientFlags.NoZeroes) != 0;

        for (var count = 0; count < _options.MaxOptionsPerHandshake; count++)
        {
            await _reader.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
            if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdWire.OptionMagic)
            {
                throw new NbdProtocolException("bad option magic");
            }

            var option = (NbdOption)ReadU32(header, 8);
            var length = ReadU32(header, 12);
            if (length > (uint)_options.MaxOptionBytes)
            {
                if (option == NbdOption.ExportName)
                {
                    throw new NbdProtocolException($"NBD_OPT_EXPORT_NAME of {length} bytes");
                }

                // Reading the rest would let a client make us swallow up to 4 GiB; refuse and hang up instead.
                await SendOptionErrorAsync(option, NbdOptionReply.ErrTooBig, $"option of {length} bytes exceeds the limit of {_options.MaxOptionBytes}", cancellationToken).ConfigureAwait(false);
                throw new NbdProtocolException($"option {(uint)option} of {length} bytes");
            }

            var data = new byte[length];
            await _reader.ReadExactlyAsync(data, cancellationToken).ConfigureAwait(false);
            var outcome = await HandleOptionAsync(option, data, cancellationToken).ConfigureAwait(false);
            if (outcome != OptionOutcome.Continue)
            {
                return outcome == OptionOutcome.Transmit;
            }
        }

        throw new NbdProtocolException($"more than {_options.MaxOptionsPerHandshake} options");
    }

    private enum OptionOutcome
    {
        Continue,
        Transmit,
        Close,
    }

    private async Task<OptionOutcome> HandleOptionAsync(NbdOption option, byte[] data, CancellationToken cancellationToken)
    {
        switch (option)
        {
            case NbdOption.ExportName:
                return await HandleExportNameAsync(data, cancellationToken).ConfigureAwait(false);
            case NbdOption.Abort:
                await SendOptionReplyAsync(option, NbdOptionReply.Ack, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                return OptionOutcome.Close;
            case NbdOption.List:
                await HandleListAsync(data, cancellationToken).ConfigureAwait(false);
                return OptionOutcome.Continue;
            case NbdOption.Info:
            case NbdOption.Go:
                return await HandleInfoOrGoAsync(option, data, cancellationToken).ConfigureAwait(false);
            case NbdOption.StructuredReply:
                if (data.Length != 0 || _structuredReplies)
                {
                    var why = data.Length != 0 ? "NBD_OPT_STRUCTURED_REPLY takes no data" : "structured replies already negotiated";
                    await SendOptionErrorAsync(option, NbdOptionReply.ErrInvalid, why, cancellationToken).ConfigureAwait(false);
                    return OptionOutcome.Continue;
                }

                _structuredReplies = true;
                await SendOptionReplyAsync(option, NbdOptionReply.Ack, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                return OptionOutcome.Continue;
            case NbdOption.ListMetaContext:
            case NbdOption.SetMetaContext:
                await HandleMetaContextAsync(option, data, cancellationToken).ConfigureAwait(false);
                return OptionOutcome.Continue;
            default:
                await SendOptionErrorAsync(option, NbdOptionReply.ErrUnsupported, $"option {(uint)option} is not supported", cancellationToken).ConfigureAwait(false);
                return OptionOutcome.Continue;
        }
    }

    private async Task<OptionOutcome> HandleExportNameAsync(byte[] data, CancellationToken cancellationToken)
    {
        // NBD_OPT_EXPORT_NAME has no error reply: any refusal is a hard disconnect, as the spec requires.
        var (name, error) = DecodeName(data);
        if (error is not null)
        {
            throw new NbdProtocolException("NBD_OPT_EXPORT_NAME: " + error.Value.Message);
        }

        var result = await OpenExportAsync(name, cancellationToken).ConfigureAwait(false);
        if (result.Status != NbdOpenStatus.Ok)
        {
            throw new NbdProtocolException($"NBD_OPT_EXPORT_NAME '{name}' refused: {result.Status} {result.Message}");
        }

        var export = result.Export!;
        _export = export;
        var reply = new byte[_noZeroes ? 10 : 134];
        BinaryPrimitives.WriteInt64BigEndian(reply, export.SizeBytes);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)TransmissionFlags);
        await _stream.WriteAsync(reply, cancellationToken).ConfigureAwait(false);
        _allocationContextSelected &= _metaContextExport == name;
        NbdLog.Transmission(_logger, _id, name, export.SizeBytes, _structuredReplies);
        return OptionOutcome.Transmit;
    }

    private async Task HandleListAsync(byte[] data, CancellationToken cancellationToken)
    {
        if (data.Length != 0)
        {
            await SendOptionErrorAsync(NbdOption.List, NbdOptionReply.ErrInvalid, "NBD_OPT_LIST takes no data", cancellationToken).ConfigureAwait(false);
            return;
        }

        IReadOnlyList<NbdExportInfo> exports;
        try
        {
            exports = await _backend.ListExportsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            NbdLog.BackendFailed(_logger, _id, "NBD_OPT_LIST", ex);
            await SendOptionErrorAsync(NbdOption.List, NbdOptionReply.ErrShutdown, "export list unavailable", cancellationToken).ConfigureAwait(false);
            return;
        }

        foreach (var export in exports)
        {
            var name = Encoding.UTF8.GetBytes(export.Name);
            var description = Encoding.UTF8.GetBytes(export.Description);
            if (name.Length > NbdWire.MaxStringBytes || description.Length > NbdWire.MaxStringBytes)
            {
                continue; // the protocol cannot carry it; the backend should not name exports so
            }

            var reply = new byte[4 + name.Length + description.Length];
            BinaryPrimitives.WriteUInt32BigEndian(reply, (uint)name.Length);
            name.CopyTo(reply, 4);
            description.CopyTo(reply, 4 + name.Length);
            await SendOptionReplyAsync(NbdOption.List, NbdOptionReply.Server, reply, cancellationToken).ConfigureAwait(false);
        }

        await SendOptionReplyAsync(NbdOption.List, NbdOptionReply.Ack, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Opens for transmission, or only describes when <paramref name="describeOnly"/> (NBD_OPT_INFO).</summary>
    private async ValueTask<NbdOpenResult> OpenExportAsync(string name, CancellationToken cancellationToken, bool describeOnly = false)
    {
        try
        {
            var result = describeOnly
                ? await _backend.DescribeAsync(name, cancellationToken).ConfigureAwait(false)
                : await _backend.OpenAsync(name, cancellationToken).ConfigureAwait(false);
            if (result.Status == NbdOpenStatus.Ok && result.Export is null)
            {
                return NbdOpenResult.Refused(NbdOpenStatus.Unavailable, "backend returned no export");
            }

            if (result.Status != NbdOpenStatus.Ok)
            {
                NbdLog.OpenRefused(_logger, _id, name, result.Status.ToString(), result.Message);
            }

            return result;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            NbdLog.BackendFailed(_logger, _id, "open", ex);
            return NbdOpenResult.Refused(NbdOpenStatus.Unavailable, "export could not be opened");
        }
    }

    private ValueTask SendOptionErrorAsync(NbdOption option, NbdOptionReply error, string message, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(message.Length > 1024 ? message[..1024] : message);
        return SendOptionReplyAsync(option, error, bytes, cancellationToken);
    }

    private async ValueTask SendOptionReplyAsync(NbdOption option, NbdOptionReply type, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var reply = new byte[NbdWire.OptionReplyHeaderBytes + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(reply, NbdWire.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(8), (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(12), (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(16), (uint)data.Length);
        data.Span.CopyTo(reply.AsSpan(NbdWire.OptionReplyHeaderBytes));
        await _stream.WriteAsync(reply, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Checks a protocol string: at most 4096 bytes, valid UTF-8, no NUL.</summary>
    private static (string Value, (NbdOptionReply Reply, string Message)? Error) DecodeName(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > NbdWire.MaxStringBytes)
        {
            return ("", (NbdOptionReply.ErrTooBig, $"name of {bytes.Length} bytes exceeds {NbdWire.MaxStringBytes}"));
        }

        if (bytes.Contains((byte)0))
        {
            return ("", (NbdOptionReply.ErrInvalid, "name contains NUL"));
        }

        try
        {
            return (StrictUtf8.GetString(bytes), null);
        }
        catch (DecoderFallbackException)
        {
            return ("", (NbdOptionReply.ErrInvalid, "name is not valid UTF-8"));
        }
    }
}
