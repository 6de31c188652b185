using System.Text;
using Converge.Log;
using Xunit;

namespace Converge.Tests.Log;

public sealed class Crc32CTests
{
    [Theory]
    [InlineData("", 0x00000000u)]
    [InlineData("a", 0xC1D04330u)]
    [InlineData("123456789", 0xE3069283u)]
    [InlineData("The quick brown fox jumps over the lazy dog", 0x22620404u)]
    public void Crc32C_MatchesKnownVectors_ForAscii(string text, uint expected)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Assert.Equal(expected, Crc32C.Compute(bytes));
        Assert.Equal(expected, Crc32C.ComputeSoftware(bytes));
    }

    [Fact]
    public void Crc32C_MatchesRfc3720Vectors()
    {
        // iSCSI (RFC 3720 B.4): 32 bytes of zeros, of 0xFF, ascending and descending.
        var zeros = new byte[32];
        var ones = Enumerable.Repeat((byte)0xFF, 32).ToArray();
        var ascending = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var descending = Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray();
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(zeros));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(ones));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(ascending));
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(descending));
    }

    [Fact]
    public void Crc32C_HardwareAndTable_AgreeOnEveryLengthAndAppendChains()
    {
        var random = new Random(1234);
        var data = new byte[4099];
        random.NextBytes(data);
        for (var length = 0; length < 70; length++)
        {
            Assert.Equal(Crc32C.ComputeSoftware(data.AsSpan(0, length)), Crc32C.Compute(data.AsSpan(0, length)));
        }

        Assert.Equal(Crc32C.ComputeSoftware(data), Crc32C.Compute(data));
        for (var split = 0; split < data.Length; split += 511)
        {
            Assert.Equal(Crc32C.Compute(data), Crc32C.Append(Crc32C.Compute(data.AsSpan(0, split)), data.AsSpan(split)));
        }
    }

    [Fact]
    public void Crc32C_Lanes_AgreeWithOneLaneAndTable_AroundEveryLaneBoundary()
    {
        var random = new Random(99);
        var data = new byte[(3 << 20) + 333];
        random.NextBytes(data);
        // Three short lanes are 2,040 bytes and three long ones 12,288: lengths on, beside and between those steps,
        // a 4 KiB block, a 4 KiB record (4,176 bytes) and a 1 MiB record.
        var lengths = new List<int> { 2039, 2040, 2041, 2047, 4080, 4095, 4096, 4176, 6120, 12287, 12288, 12289, 14328, 24576 + 2040 + 7, 1048576, 1048660, data.Length };
        lengths.AddRange(Enumerable.Range(0, 40).Select(_ => random.Next(2000, 200_000)));
        foreach (var length in lengths)
        {
            var span = data.AsSpan(Math.Min(random.Next(0, 9), data.Length - length), length);
            var lanes = Crc32C.Compute(span);
            Assert.Equal(Crc32C.ComputeOneLane(span), lanes);
            if (length <= 200_000)
            {
                Assert.Equal(Crc32C.ComputeSoftware(span), lanes);
            }
        }
    }

    [Fact]
    public void Crc32C_Combine_EqualsTheChecksumOfTheConcatenation()
    {
        var random = new Random(7);
        var data = new byte[70_000];
        random.NextBytes(data);
        foreach (var split in new[] { 0, 1, 7, 28, 4096, 35_001, 69_999, 70_000 })
        {
            var a = data.AsSpan(0, split);
            var b = data.AsSpan(split);
            Assert.Equal(Crc32C.Compute(data), Crc32C.Combine(Crc32C.Compute(a), Crc32C.Compute(b), b.Length));
        }

        Assert.Equal(0x12345678u, Crc32C.Combine(0x12345678u, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Crc32C.Combine(0, 0, -1));
    }

    [Fact]
    public void Crc32C_OfBytesFollowedByTheirOwnCrc_IsTheResidue_AndOnlyThen()
    {
        // The published CRC-32C check residue (after the final xor).
        Assert.Equal(0x48674BC7u, Crc32C.Residue);
        var random = new Random(3);
        foreach (var length in new[] { 0, 1, 80, 4176, 20_000 })
        {
            var message = new byte[length + 4];
            random.NextBytes(message.AsSpan(0, length));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(message.AsSpan(length), Crc32C.Compute(message.AsSpan(0, length)));
            Assert.Equal(Crc32C.Residue, Crc32C.Compute(message));

            // Any single flipped bit, in the bytes or in the CRC, moves it off the residue.
            for (var trial = 0; trial < 16; trial++)
            {
                var bit = random.Next(message.Length * 8);
                message[bit / 8] ^= (byte)(1 << (bit % 8));
                Assert.NotEqual(Crc32C.Residue, Crc32C.Compute(message));
                message[bit / 8] ^= (byte)(1 << (bit % 8));
            }
        }
    }
}
