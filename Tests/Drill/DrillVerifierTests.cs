using Converge.Client.Drill;
using Xunit;

namespace Converge.Tests.Drill;

/// <summary>The drill's verifier must catch what it exists to catch: a lost acknowledged write and a wrong block.</summary>
public sealed class DrillVerifierTests
{
    private static readonly Guid VolumeId = Guid.Parse("6f1c2a0e-3b7d-4c55-9e01-7a2b8c9d0e1f");

    [Fact]
    public void Verifier_AcceptsTheAcknowledgedVersion_AndAnInFlightNewerOne()
    {
        var model = new DrillModel(VolumeId, 16);
        var v1 = model.BeginWrite(3);
        model.Acknowledge(3, v1);
        var v2 = model.BeginWrite(3); // in flight when a fault hit: never acknowledged

        Assert.Equal(BlockVerdict.Ok, model.Check(3, Stamp(3, v1), model.MinimumVisible(3)));
        Assert.Equal(BlockVerdict.Ok, model.Check(3, Stamp(3, v2), model.MinimumVisible(3)));
        Assert.Equal(BlockVerdict.Ok, model.Check(4, new byte[BlockStamp.BlockBytes], model.MinimumVisible(4)));
        Assert.Equal(0, model.LostWrites + model.WrongReads);
    }

    [Fact]
    public void Verifier_CountsALostWrite_WhenAnAcknowledgedVersionReadsOlderOrAsZeros()
    {
        var model = new DrillModel(VolumeId, 16);
        var v1 = model.BeginWrite(5);
        model.Acknowledge(5, v1);
        var v2 = model.BeginWrite(5);
        model.Acknowledge(5, v2);

        Assert.Equal(BlockVerdict.LostWrite, model.Check(5, Stamp(5, v1), model.MinimumVisible(5)));
        Assert.Equal(BlockVerdict.LostWrite, model.Check(5, new byte[BlockStamp.BlockBytes], model.MinimumVisible(5)));
        Assert.Equal(2, model.LostWrites);
        Assert.Equal(0, model.WrongReads);
        Assert.Contains(model.Problems, p => p.Contains("block 5", StringComparison.Ordinal) && p.Contains("acknowledged 2", StringComparison.Ordinal));
    }

    [Fact]
    public void Verifier_CountsAWrongRead_ForACorruptMisplacedOrNeverSentBlock()
    {
        var model = new DrillModel(VolumeId, 16);
        var v1 = model.BeginWrite(7);
        model.Acknowledge(7, v1);

        var flipped = Stamp(7, v1);
        flipped[2000] ^= 0x04;
        Assert.Equal(BlockVerdict.WrongRead, model.Check(7, flipped, model.MinimumVisible(7)));
        Assert.Equal(BlockVerdict.WrongRead, model.Check(7, Stamp(8, v1), model.MinimumVisible(7)));
        var otherVolume = new byte[BlockStamp.BlockBytes];
        BlockStamp.Fill(otherVolume, Guid.NewGuid(), 7L * BlockStamp.BlockBytes, v1);
        Assert.Equal(BlockVerdict.WrongRead, model.Check(7, otherVolume, model.MinimumVisible(7)));
        Assert.Equal(BlockVerdict.WrongRead, model.Check(7, Stamp(7, v1 + 1), model.MinimumVisible(7)));
        Assert.Equal(4, model.WrongReads);
        Assert.Equal(0, model.LostWrites);
    }

    [Fact]
    public void RecoveryClock_MeasuresFromTheFault_ToTheFirstAcknowledgedWriteIssuedAfterIt()
    {
        var clock = new RecoveryClock();
        var issuedBefore = System.Diagnostics.Stopwatch.GetTimestamp();
        clock.FaultInjected("storage-kill");
        clock.WriteAcknowledged(issuedBefore); // in flight before the fault: proves nothing
        Assert.Empty(clock.Snapshot().RecoveredMs);
        Assert.Equal(1, clock.Snapshot().Unrecovered["storage-kill"]);

        clock.WriteAcknowledged(System.Diagnostics.Stopwatch.GetTimestamp());
        var (recovered, unrecovered) = clock.Snapshot();
        Assert.Single(recovered["storage-kill"]);
        Assert.Empty(unrecovered);
        Assert.Equal(3.0, RecoveryClock.Quantile([5.0, 1.0, 3.0], 0.5));
        Assert.Equal(5.0, RecoveryClock.Quantile([5.0, 1.0, 3.0], 0.99));
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("3m", 180)]
    [InlineData("1h30m", 5400)]
    [InlineData("45", 45)]
    public void Duration_Parses(string text, int seconds) => Assert.Equal(TimeSpan.FromSeconds(seconds), DrillOptions.ParseDuration(text));

    [Theory]
    [InlineData("")]
    [InlineData("m")]
    [InlineData("3x")]
    [InlineData("-3m")]
    public void Duration_RefusesMalformedText(string text) => Assert.Null(DrillOptions.ParseDuration(text));

    [Theory]
    [InlineData(0, "--fault-interval")]
    [InlineData(61, "--fault-interval")]
    [InlineData(1, null)]
    [InlineData(60, null)]
    public void FaultInterval_IsCheckedAgainstItsRange(int seconds, string? refusal)
    {
        var options = new DrillOptions(TimeSpan.FromMinutes(1), Seed: 1) { MeanFaultInterval = TimeSpan.FromSeconds(seconds) };
        if (refusal is null)
        {
            Assert.Null(options.Check());
        }
        else
        {
            Assert.StartsWith(refusal, options.Check());
        }
    }

    private static byte[] Stamp(long block, long version)
    {
        var data = new byte[BlockStamp.BlockBytes];
        BlockStamp.Fill(data, VolumeId, block * BlockStamp.BlockBytes, version);
        return data;
    }
}
