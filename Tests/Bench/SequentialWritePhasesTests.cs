using Converge.Client.Bench;
using Xunit;

namespace Converge.Tests.Bench;

/// <summary>Burst and sustained sequential-write throughput come from fio's per-second bandwidth log (captured from fio 3.33).</summary>
public sealed class SequentialWritePhasesTests
{
    private static string Fixture(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Bench", "Fixtures", name));

    [Fact]
    public void BandwidthLog_IsReadInMegabytesPerSecond_OneValuePerLine()
    {
        var perSecond = SequentialWritePhases.ParseBandwidthLog(Fixture("fio-nbd-seqwrite-bw.log"));

        Assert.Equal(29, perSecond.Count);
        Assert.Equal(164207 * 1024 / 1e6, perSecond[0], 9);
        Assert.Equal(150948 * 1024 / 1e6, perSecond[1], 9);
    }

    [Theory]
    [InlineData("1004, abc, 1, 0, 0")]
    [InlineData("1004")]
    [InlineData("1004, -5, 1, 0, 0")]
    [InlineData("x, 5, 1, 0, 0")]
    public void MalformedLines_AreRefused(string line) =>
        Assert.Throws<FormatException>(() => SequentialWritePhases.ParseBandwidthLog("1000, 5, 1, 0, 0\n" + line + "\n"));

    [Fact]
    public void Burst_IsTheFirstSeconds_Sustained_TheLastOnes_AndThePeakFillIsKept()
    {
        double[] perSecond = [300, 300, 300, 300, 300, 250, 200, 150, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100];
        double[] fills = [0.1, 0.5, 0.9, 1.0, 0.98];

        var phases = SequentialWritePhases.From(perSecond, fills)!;

        Assert.Equal(300, phases.BurstMBps, 9);
        Assert.Equal(100, phases.SustainedMBps, 9);
        Assert.Equal(1.0, phases.PeakNvramFill, 9);
        Assert.Contains("NVRAM filled", phases.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void ARunShorterThanBothWindows_HasNoPhases()
    {
        Assert.Null(SequentialWritePhases.From(Enumerable.Repeat(100.0, SequentialWritePhases.MinimumSeconds - 1).ToArray(), [0.1]));
        Assert.NotNull(SequentialWritePhases.From(Enumerable.Repeat(100.0, SequentialWritePhases.MinimumSeconds).ToArray(), []));
    }

    [Fact]
    public void NvramThatNeverFilled_IsSaidSo()
    {
        var phases = SequentialWritePhases.From(Enumerable.Repeat(150.0, 20).ToArray(), [0.1, 0.2, 0.15])!;

        Assert.Contains("NVRAM never filled", phases.Describe(), StringComparison.Ordinal);
        Assert.Contains("peaked at 20%", phases.Describe(), StringComparison.Ordinal);
    }
}
