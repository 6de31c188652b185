using System.Buffers.Binary;
using System.Text;

namespace Converge.Fuzz.Nbd;

/// <summary>Builds the byte stream a client would send: client flags, options, then transmission requests.</summary>
internal sealed class SessionBuilder
{
    private readonly MemoryStream _bytes = new();

    public SessionBuilder ClientFlags(uint flags)
    {
        U32(flags);
        return this;
    }

    public SessionBuilder Option(uint option, ReadOnlySpan<byte> data)
    {
        U64(0x49484156454F5054);
        U32(option);
        U32((uint)data.Length);
        _bytes.Write(data);
        return this;
    }

    public SessionBuilder Go(string name, bool info = false, params ushort[] requests)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var data = new byte[6 + nameBytes.Length + (2 * requests.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)nameBytes.Length);
        nameBytes.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + nameBytes.Length), (ushort)requests.Length);
        for (var i = 0; i < requests.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + nameBytes.Length + (2 * i)), requests[i]);
        }

        return Option(info ? 6u : 7u, data);
    }

    public SessionBuilder MetaContext(bool set, string name, params string[] queries)
    {
        var body = new MemoryStream();
        var nameBytes = Encoding.UTF8.GetBytes(name);
        WriteU32(body, (uint)nameBytes.Length);
        body.Write(nameBytes);
        WriteU32(body, (uint)queries.Length);
        foreach (var query in queries)
        {
            var queryBytes = Encoding.UTF8.GetBytes(query);
            WriteU32(body, (uint)queryBytes.Length);
            body.Write(queryBytes);
        }

        return Option(set ? 10u : 9u, body.ToArray());
    }

    public SessionBuilder Request(ushort command, ushort flags, ulong cookie, ulong offset, uint length, ReadOnlySpan<byte> payload = default)
    {
        U32(0x25609513);
        U16(flags);
        U16(command);
        U64(cookie);
        U64(offset);
        U32(length);
        _bytes.Write(payload);
        return this;
    }

    public SessionBuilder Raw(ReadOnlySpan<byte> bytes)
    {
        _bytes.Write(bytes);
        return this;
    }

    public byte[] ToArray() => _bytes.ToArray();

    private void U16(ushort value)
    {
        Span<byte> span = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(span, value);
        _bytes.Write(span);
    }

    private void U32(uint value) => WriteU32(_bytes, value);

    private void U64(ulong value)
    {
        Span<byte> span = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(span, value);
        _bytes.Write(span);
    }

    private static void WriteU32(Stream stream, uint value)
    {
        Span<byte> span = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(span, value);
        stream.Write(span);
    }
}
