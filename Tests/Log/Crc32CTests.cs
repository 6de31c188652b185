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
}
