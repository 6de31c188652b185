using Converge.Cluster;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// The controller's batch calls, which the NBD gateway uses for the requests one connection dispatches together: each
/// request is answered on its own, in order; a batch the controller cannot pair up is refused before anything is written.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class BatchCallTests(WritePathCluster cluster)
{
    private const int Block = BlockPattern.BlockBytes;

    [Fact]
    public async Task WriteMany_AnswersEachWriteOnItsOwn_AndReadManyReadsThemBack()
    {
        await cluster.CreateVolumeAsync("batch", 1L << 20);
        await using var volume = new VolumeSession(cluster.Grains, "batch", "compute-1");
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "batch"));

        // The middle write runs past the end of the 1 MiB volume; the others are acknowledged regardless.
        var statuses = await controller.WriteManyAcknowledgedAsync(
            [0, (1L << 20) - Block, 5 * Block],
            [BlockOf(0x41), new byte[2 * Block], BlockOf(0x42)],
            WriteDeadline.FromNow());
        Assert.Equal([IoStatus.Ok, IoStatus.OutOfRange, IoStatus.Ok], statuses);

        var reads = await controller.ReadManyAsync([5 * Block, 0, 1L << 20], [Block, Block, Block]);
        Assert.Equal([IoStatus.Ok, IoStatus.Ok, IoStatus.OutOfRange], reads.Select(r => r.Status));
        Assert.Equal(BlockOf(0x42), reads[0].Data);
        Assert.Equal(BlockOf(0x41), reads[1].Data);
    }

    [Fact]
    public async Task ABatchThatDoesNotPairUp_IsRefused_AndWritesNothing()
    {
        await cluster.CreateVolumeAsync("batch-refused", 1L << 20);
        await using var volume = new VolumeSession(cluster.Grains, "batch-refused", "compute-1");
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "batch-refused"));
        Assert.Equal(IoStatus.Ok, await controller.WriteAcknowledgedAsync(0, BlockOf(0x10), WriteDeadline.FromNow()));

        var mismatched = await Assert.ThrowsAsync<ArgumentException>(() =>
            controller.WriteManyAcknowledgedAsync([0, Block], [BlockOf(0x66)], WriteDeadline.FromNow()));
        Assert.Contains("2 offsets", mismatched.Message);
        var tooMany = Enumerable.Range(0, VolumeBatch.MaxRequests + 1).ToArray();
        await Assert.ThrowsAsync<ArgumentException>(() => controller.WriteManyAcknowledgedAsync(
            tooMany.Select(_ => 0L).ToArray(), tooMany.Select(_ => (ReadOnlyMemory<byte>)BlockOf(0x66)).ToArray(), WriteDeadline.FromNow()));
        await Assert.ThrowsAsync<ArgumentException>(() => controller.ReadManyAsync([], []));

        Assert.Equal(BlockOf(0x10), (await controller.ReadAsync(0, Block)).Data);
    }

    private static byte[] BlockOf(byte value) => Enumerable.Repeat(value, Block).ToArray();
}
