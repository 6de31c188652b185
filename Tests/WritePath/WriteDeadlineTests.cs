using Converge.Cluster;
using Converge.DataPath;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// A write whose deadline passed before it got its log position is refused and changes nothing: a caller that timed
/// out and wrote the block again must never see the older write land on top (<see cref="WriteDeadline"/>).
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class WriteDeadlineTests(WritePathCluster cluster)
{
    [Fact]
    public async Task AWritePastItsDeadline_IsRefused_AndTheBlockKeepsTheAcknowledgedVersion()
    {
        await cluster.CreateVolumeAsync("deadline", 1L << 20);
        await using var volume = new VolumeSession(cluster.Grains, "deadline", "compute-1");
        var acknowledged = BlockOf(0x11);
        Assert.Equal(IoStatus.Ok, await volume.WriteAsync(0, acknowledged));
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "deadline"));

        var late = await controller.WriteAcknowledgedAsync(0, BlockOf(0x22), notAfterUtcTicks: DateTime.UtcNow.Ticks - 1);
        var lateZero = await controller.ZeroAcknowledgedAsync(0, BlockPattern.BlockBytes, notAfterUtcTicks: DateTime.UtcNow.Ticks - 1);

        Assert.Equal(IoStatus.IoError, late);
        Assert.Equal(IoStatus.IoError, lateZero);
        var read = await volume.ReadAsync(0, BlockPattern.BlockBytes);
        Assert.Equal(IoStatus.Ok, read.Status);
        Assert.Equal(acknowledged, read.Data!.AsSpan(0, BlockPattern.BlockBytes).ToArray());

        // In time, the same call goes through.
        Assert.Equal(IoStatus.Ok, await controller.WriteAcknowledgedAsync(0, BlockOf(0x33), WriteDeadline.FromNow()));
        Assert.Equal(BlockOf(0x33), (await volume.ReadAsync(0, BlockPattern.BlockBytes)).Data!.AsSpan(0, BlockPattern.BlockBytes).ToArray());
    }

    private static byte[] BlockOf(byte value) => Enumerable.Repeat(value, BlockPattern.BlockBytes).ToArray();
}
