using Converge.Volumes;
using Xunit;

namespace Converge.Tests.Volumes;

public sealed class VolumeRulesTests
{
    [Theory]
    [InlineData("vm1")]
    [InlineData("a")]
    [InlineData("0disk.v2_a-b")]
    public void ValidNames_AreAccepted(string name) => Assert.Null(VolumeRules.CheckName(name));

    [Theory]
    [InlineData("")]
    [InlineData("Bad Name!")]
    [InlineData("UPPER")]
    [InlineData("-leading")]
    [InlineData(".hidden")]
    [InlineData("has/slash")]
    [InlineData("a2345678901234567890123456789012345678901234567890123456789012345")]
    public void InvalidNames_AreRefusedWithAReason(string name) =>
        Assert.Contains("invalid volume name", VolumeRules.CheckName(name));

    [Theory]
    [InlineData("1G", 1L << 30)]
    [InlineData("512M", 512L << 20)]
    [InlineData("1T", 1L << 40)]
    [InlineData("4096", 4096L)]
    [InlineData("64k", 64L << 10)]
    public void Sizes_ParseWithBinaryUnits(string text, long expected) => Assert.Equal(expected, VolumeRules.ParseSize(text));

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("-1G")]
    [InlineData("1.5G")]
    [InlineData("1GiB")]
    [InlineData("99999999999999999999")]
    [InlineData("9999999999T")]
    public void MalformedSizes_DoNotParse(string text) => Assert.Null(VolumeRules.ParseSize(text));

    [Theory]
    [InlineData(0L)]
    [InlineData(1000L)]
    [InlineData((1L << 20) + 1)]
    [InlineData((64L << 40) + 4096)]
    public void OutOfRangeOrUnalignedSizes_AreRefused(long size) => Assert.NotNull(VolumeRules.CheckSize(size, 4096));

    [Fact]
    public void OneMebibyteAndSixtyFourTebibytes_AreTheBounds()
    {
        Assert.Null(VolumeRules.CheckSize(1L << 20, 4096));
        Assert.Null(VolumeRules.CheckSize(64L << 40, 4096));
    }

    [Theory]
    [InlineData(256)]
    [InlineData(3000)]
    [InlineData(131072)]
    public void BadBlockSizes_AreRefused(int blockSize) => Assert.NotNull(VolumeRules.CheckBlockSize(blockSize));
}
