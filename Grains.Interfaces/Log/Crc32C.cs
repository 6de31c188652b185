using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ArmCrc32 = System.Runtime.Intrinsics.Arm.Crc32;

namespace Converge.Log;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF), the checksum of
/// every record, log frame, extent block and metadata slot. Uses the SSE4.2 or ARMv8 CRC instructions when present
/// and a table otherwise; all paths give the same bits.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="System.IO.Hashing.Crc32"/> is the zlib polynomial, not Castagnoli, so it cannot stand in here.
/// <c>Append(Compute(a), b) == Compute(a ++ b)</c>, which is how frames chain their checksums, and
/// <c>Combine(Compute(a), Compute(b), b.Length) == Compute(a ++ b)</c> without reading either again.
/// </para>
/// <para>
/// Speed: one CRC instruction depends on the one before, so a single running value is bound by the instruction's
/// latency (three cycles per 8 bytes on current x86 cores), while the CPU could start one per cycle. On x86 with
/// carry-less multiplication, buffers of a few hundred bytes and more are therefore cut into three lanes checksummed
/// side by side, and the lanes' values are joined by multiplying with x^(8n) modulo the polynomial (the algebra of
/// <see cref="Combine"/>): about three times the throughput on long buffers.
/// </para>
/// </remarks>
public static class Crc32C
{
    private const uint ReflectedPolynomial = 0x82F63B78u;

    /// <summary>Bytes per lane for long buffers (one round covers three lanes).</summary>
    private const int LongLaneBytes = 4096;

    /// <summary>Bytes per lane for the rest: three short lanes cover a 4 KiB block in two rounds.</summary>
    private const int ShortLaneBytes = 680;

    private static readonly uint[] Table = BuildTable();

    /// <summary>x^(8 * 2^k) modulo the polynomial (reflected), for <see cref="Combine"/>.</summary>
    private static readonly uint[] PowersOfTwoBytes = BuildPowers();

    // Lane joins for the carry-less path: the shift of a lane value by n bytes is clmul(value, x^(8n - 33)) reduced
    // by one CRC instruction (which multiplies by x^32 and accounts for the product's one-bit offset).
    private static readonly ulong LongShift1 = XPowerModP(8 * LongLaneBytes - 33);
    private static readonly ulong LongShift2 = XPowerModP(16 * LongLaneBytes - 33);
    private static readonly ulong ShortShift1 = XPowerModP(8 * ShortLaneBytes - 33);
    private static readonly ulong ShortShift2 = XPowerModP(16 * ShortLaneBytes - 33);

    /// <summary>
    /// What <see cref="Compute"/> gives for any bytes followed by their own CRC-32C (little-endian), and only then:
    /// a record whose whole encoding checksums to this is intact.
    /// </summary>
    public static readonly uint Residue = ComputeSoftware(new byte[4]);

    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues <paramref name="crc"/> (a finished CRC-32C of earlier bytes) over <paramref name="data"/>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data) => ~Update(~crc, data);

    /// <summary>
    /// The CRC-32C of <c>a ++ b</c> from <paramref name="crcA"/> (of <c>a</c>), <paramref name="crcB"/> (of <c>b</c>) and
    /// the length of <c>b</c>, without the bytes: one multiplication per set bit of the length.
    /// </summary>
    public static uint Combine(uint crcA, uint crcB, long lengthB)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(lengthB);
        // Appending n bytes multiplies the previous value by x^(8n) and adds the CRC-32C of the new bytes alone.
        var shifted = crcA;
        for (var bit = 0; lengthB != 0; bit++, lengthB >>= 1)
        {
            if ((lengthB & 1) != 0)
            {
                shifted = MultiplyModP(shifted, PowersOfTwoBytes[bit]);
            }
        }

        return shifted ^ crcB;
    }

    /// <summary>The table-driven path, public so tests can check the hardware paths against it.</summary>
    public static uint ComputeSoftware(ReadOnlySpan<byte> data) => ~UpdateSoftware(~0u, data);

    /// <summary>The hardware path without lanes, public so tests can check the lanes against it.</summary>
    public static uint ComputeOneLane(ReadOnlySpan<byte> data) => ~UpdateOneLane(~0u, data);

    private static uint Update(uint state, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported && Pclmulqdq.IsSupported && data.Length >= 3 * ShortLaneBytes)
        {
            ref var cursor = ref MemoryMarshal.GetReference(data);
            var left = data.Length;
            while (left >= 3 * LongLaneBytes)
            {
                state = ThreeLanes(state, ref cursor, LongLaneBytes, LongShift1, LongShift2);
                cursor = ref Unsafe.Add(ref cursor, 3 * LongLaneBytes);
                left -= 3 * LongLaneBytes;
            }

            while (left >= 3 * ShortLaneBytes)
            {
                state = ThreeLanes(state, ref cursor, ShortLaneBytes, ShortShift1, ShortShift2);
                cursor = ref Unsafe.Add(ref cursor, 3 * ShortLaneBytes);
                left -= 3 * ShortLaneBytes;
            }

            return UpdateOneLane(state, MemoryMarshal.CreateReadOnlySpan(ref cursor, left));
        }

        return UpdateOneLane(state, data);
    }

    /// <summary>Three lanes of <paramref name="lane"/> bytes (a multiple of 8) at once, joined into one value.</summary>
    private static uint ThreeLanes(uint state, ref byte start, int lane, ulong shift1, ulong shift2)
    {
        ulong first = state, second = 0, third = 0;
        ref var b = ref Unsafe.Add(ref start, lane);
        ref var c = ref Unsafe.Add(ref start, 2 * lane);
        for (var offset = 0; offset < lane; offset += 8)
        {
            first = Sse42.X64.Crc32(first, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset)));
            second = Sse42.X64.Crc32(second, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b, offset)));
            third = Sse42.X64.Crc32(third, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, offset)));
        }

        // The register is linear: running on over the later lanes multiplies what came before by x^(8 * their length).
        return (uint)(ShiftLane(first, shift2) ^ ShiftLane(second, shift1) ^ third);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ShiftLane(ulong value, ulong shift)
    {
        var product = Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(value), Vector128.CreateScalar(shift), 0x00);
        return Sse42.X64.Crc32(0, product.ToScalar());
    }

    private static uint UpdateOneLane(uint state, ReadOnlySpan<byte> data)
    {
        if (Sse42.X64.IsSupported)
        {
            ulong wide = state;
            while (data.Length >= 8)
            {
                wide = Sse42.X64.Crc32(wide, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }

            state = (uint)wide;
            foreach (var b in data)
            {
                state = Sse42.Crc32(state, b);
            }

            return state;
        }

        if (Sse42.IsSupported)
        {
            while (data.Length >= 4)
            {
                state = Sse42.Crc32(state, BinaryPrimitives.ReadUInt32LittleEndian(data));
                data = data[4..];
            }

            foreach (var b in data)
            {
                state = Sse42.Crc32(state, b);
            }

            return state;
        }

        if (ArmCrc32.Arm64.IsSupported)
        {
            while (data.Length >= 8)
            {
                state = ArmCrc32.Arm64.ComputeCrc32C(state, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }

            foreach (var b in data)
            {
                state = ArmCrc32.ComputeCrc32C(state, b);
            }

            return state;
        }

        return UpdateSoftware(state, data);
    }

    private static uint UpdateSoftware(uint state, ReadOnlySpan<byte> data)
    {
        var table = Table;
        foreach (var b in data)
        {
            state = table[(state ^ b) & 0xFF] ^ (state >> 8);
        }

        return state;
    }

    /// <summary>
    /// The product of two polynomials modulo the CRC polynomial, both reflected (the top bit is x^0), as the CRC
    /// register holds them.
    /// </summary>
    private static uint MultiplyModP(uint a, uint b)
    {
        uint product = 0;
        for (var i = 0; i < 32; i++)
        {
            product ^= (uint)-(int)(a >> 31) & b;
            a <<= 1;
            b = (b >> 1) ^ ((uint)-(int)(b & 1) & ReflectedPolynomial);
        }

        return product;
    }

    /// <summary>x^<paramref name="power"/> modulo the polynomial, reflected, by multiplying x^0 by x that many times.</summary>
    private static uint XPowerModP(int power)
    {
        var value = 0x80000000u;
        for (var i = 0; i < power; i++)
        {
            value = (value >> 1) ^ ((value & 1) != 0 ? ReflectedPolynomial : 0);
        }

        return value;
    }

    private static uint[] BuildPowers()
    {
        var powers = new uint[64];
        powers[0] = XPowerModP(8);
        for (var k = 1; k < powers.Length; k++)
        {
            powers[k] = MultiplyModP(powers[k - 1], powers[k - 1]);
        }

        return powers;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var bit = 0; bit < 8; bit++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ ReflectedPolynomial : c >> 1;
            }

            table[i] = c;
        }

        return table;
    }
}
