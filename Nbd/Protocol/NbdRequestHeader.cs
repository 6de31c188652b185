using System.Buffers.Binary;

namespace Converge.Nbd.Protocol;

/// <summary>One transmission-phase request header (28 bytes on the wire), parsed without allocating.</summary>
public readonly record struct NbdRequestHeader(NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong OffsetBytes, uint LengthBytes)
{
    /// <summary>
    /// Parses the first <see cref="NbdWire.RequestHeaderBytes"/> bytes of <paramref name="header"/>; false when the magic
    /// is wrong (the stream is out of step and the connection must end) or the span is too short.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> header, out NbdRequestHeader request)
    {
        if (header.Length < NbdWire.RequestHeaderBytes || BinaryPrimitives.ReadUInt32BigEndian(header) != NbdWire.RequestMagic)
        {
            request = default;
            return false;
        }

        request = new NbdRequestHeader(
            (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(header[4..]),
            (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(header[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(header[24..]));
        return true;
    }
}
