using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// Writes larger than one record (1 MiB of payload) are cut on 1 MiB multiples of the volume offset into records written
/// in parallel; pieces that start or end inside a block merge with the bytes already there, and a read across the cuts
/// sees one write.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class LargeWriteTests(WritePathCluster cluster)
{
    private const int MiB = 1024 * 1024;

    [Fact]
    public async Task AWriteAcrossRecordCuts_ReadsBackWhole_WithTheBytesAroundItKept()
    {
        await cluster.CreateVolumeAsync("large-write", 8L * MiB);
        await using var volume = new VolumeSession(cluster.Grains, "large-write", "compute-1");

        // The volume's first 4 MiB hold a known pattern first, so merged edge blocks can be checked.
        var expected = new byte[4 * MiB];
        new Random(17).NextBytes(expected);
        Assert.Equal(Converge.DataPath.IoStatus.Ok, await volume.WriteAsync(0, expected));

        // Starts 3 blocks and 100 bytes before the first cut, ends inside a block after the third: four pieces, the first
        // and last of them partial at both the byte and the block level.
        var offset = MiB - (3 * 4096) - 100;
        var data = new byte[(2 * MiB) + (5 * 4096) + 300];
        new Random(18).NextBytes(data);
        Assert.Equal(Converge.DataPath.IoStatus.Ok, await volume.WriteAsync(offset, data));
        data.CopyTo(expected, offset);

        var read = await volume.ReadAsync(0, 4 * MiB);
        Assert.Equal(Converge.DataPath.IoStatus.Ok, read.Status);
        var firstDifference = expected.AsSpan().CommonPrefixLength(read.Data.AsSpan(0, 4 * MiB));
        Assert.True(firstDifference == 4 * MiB, $"the read differs from what was written at byte {firstDifference}");
    }
}
