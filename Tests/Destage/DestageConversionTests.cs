using Converge.Grains.Destage;
using Converge.Grains.Volumes;
using Converge.Log;
using Converge.Storage;
using Xunit;

namespace Converge.Tests.Destage;

public sealed class DestageConversionTests
{
    private const int BlockSizeBytes = 4096;
    private const int BlocksPerExtent = 1024;
    private static readonly Guid VolumeId = Guid.Parse("0c5f1a6e-3f4b-4a8e-9d2e-6b1f0a7c9e11");

    [Fact]
    public void WriteRecord_AcrossAnExtentBoundary_SplitsIntoOneWritePerExtent_WithTheRightPayloadSlices()
    {
        // Four blocks: the last two of extent 0, the first two of extent 1.
        var payload = new byte[4 * BlockSizeBytes];
        for (var i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(i / BlockSizeBytes + 1);
        }

        var lsn = new Converge.Log.Lsn(3, 77);
        var writes = DestageConversion.ToExtentWrites(VolumeId, LogRecordKind.Write, lsn, (ulong)(1022L * BlockSizeBytes),
            (ulong)payload.Length, payload, BlockSizeBytes, BlocksPerExtent).ToArray();

        Assert.Equal(2, writes.Length);
        Assert.Equal((1022L, 2), (writes[0].BlockIndex, writes[0].BlockCount));
        Assert.Equal((1024L, 2), (writes[1].BlockIndex, writes[1].BlockCount));
        Assert.All(writes, w => Assert.Equal(ExtentWriteKind.Data, w.Kind));
        Assert.All(writes, w => Assert.Equal(new Converge.Storage.Lsn(3, 77), w.Lsn));
        Assert.All(writes, w => Assert.Equal(VolumeId, w.VolumeId));
        Assert.Equal(1, writes[0].Payload.Span[0]);
        Assert.Equal(2, writes[0].Payload.Span[^1]);
        Assert.Equal(3, writes[1].Payload.Span[0]);
        Assert.Equal(4, writes[1].Payload.Span[^1]);
        Assert.Equal(2 * BlockSizeBytes, writes[1].Payload.Length);
    }

    [Fact]
    public void ZeroRecord_OverThreeExtents_BecomesZeroWritesWithoutPayload()
    {
        var writes = DestageConversion.ToExtentWrites(VolumeId, LogRecordKind.Zero, new Converge.Log.Lsn(1, 5), (ulong)(1000L * BlockSizeBytes),
            (ulong)(2100L * BlockSizeBytes), ReadOnlyMemory<byte>.Empty, BlockSizeBytes, BlocksPerExtent).ToArray();

        Assert.Equal([(1000L, 24), (1024L, 1024), (2048L, 1024), (3072L, 28)], writes.Select(w => (w.BlockIndex, w.BlockCount)).ToArray());
        Assert.All(writes, w => Assert.Equal(ExtentWriteKind.Zero, w.Kind));
        Assert.All(writes, w => Assert.True(w.Payload.IsEmpty));
    }

    [Fact]
    public void Records_NotWholeBlocks_OrWithAnEpochBeyond32Bits_AreRejected()
    {
        Assert.Throws<InvalidDataException>(() => DestageConversion.ToExtentWrites(VolumeId, LogRecordKind.Zero, new Converge.Log.Lsn(1, 1),
            100, (ulong)BlockSizeBytes, ReadOnlyMemory<byte>.Empty, BlockSizeBytes, BlocksPerExtent).ToArray());
        Assert.Throws<InvalidDataException>(() => DestageConversion.ToExtentWrites(VolumeId, LogRecordKind.Write, new Converge.Log.Lsn(1, 1),
            0, (ulong)BlockSizeBytes, new byte[10], BlockSizeBytes, BlocksPerExtent).ToArray());
        Assert.Throws<OverflowException>(() => DestageConversion.ToExtentWrites(VolumeId, LogRecordKind.Zero, new Converge.Log.Lsn((ulong)uint.MaxValue + 1, 1),
            0, (ulong)BlockSizeBytes, ReadOnlyMemory<byte>.Empty, BlockSizeBytes, BlocksPerExtent).ToArray());
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void PlacementGroups_AreOnTwoDifferentNodes_AndSpreadEvenly(int nodeCount)
    {
        var nodes = Enumerable.Range(1, nodeCount).Select(i => $"storage-{i}").ToArray();
        var groups = VolumePlacementGrain.Assign(nodes, 64);

        Assert.Equal(64, groups.Count);
        Assert.All(groups, g => Assert.NotEqual(g.NodeA, g.NodeB));
        var perNode = nodes.Select(n => groups.Count(g => g.NodeA == n || g.NodeB == n)).ToArray();
        Assert.True(perNode.Max() - perNode.Min() <= 2, $"replicas per node: {string.Join(", ", perNode)}");
        Assert.Throws<InvalidOperationException>(() => VolumePlacementGrain.Assign(["storage-1"], 64));
    }
}
