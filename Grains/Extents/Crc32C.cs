using System.Buffers.Binary;
using System.Numerics;

namespace Converge.Grains.Extents;

/// <summary>
/// CRC32C (Castagnoli), the checksum of every block and metadata slot in the extent store. Uses the CPU's CRC32
/// instruction through <see cref="BitOperations.Crc32C(uint, ulong)"/> (software fallback elsewhere).
/// Standard framing: initial value and final xor 0xFFFFFFFF, so "123456789" gives 0xE3069283.
/// </summary>
public static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues <paramref name="crc"/> (a value returned by <see cref="Compute"/> or this method) over more bytes.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var state = ~crc;
        while (data.Length >= 8)
        {
            state = BitOperations.Crc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            state = BitOperations.Crc32C(state, b);
        }

        return ~state;
    }
}
