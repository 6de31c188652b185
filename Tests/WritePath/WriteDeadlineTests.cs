using System.Diagnostics;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
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

    /// <summary>
    /// A write whose first append outlives its deadline (one mirror's fdatasync held) is not sent again to a new pair:
    /// past the deadline the caller may have given up and reused its buffer, so the controller answers IoError instead
    /// of re-encoding the record from it.
    /// </summary>
    [Fact]
    public async Task AWriteWhoseAppendOutlivesItsDeadline_IsNotRetriedOnANewPair()
    {
        await cluster.CreateVolumeAsync("deadline-retry", 1L << 20);
        await using var volume = new VolumeSession(cluster.Grains, "deadline-retry", "compute-1");
        Assert.Equal(IoStatus.Ok, await volume.WriteAsync(0, BlockOf(0x11)));
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "deadline-retry"));
        var segment = await cluster.OpenSegmentAsync("deadline-retry");
        var trigger = Path.Combine(cluster.FaultDirectory, segment.MirrorA + ".hold-flush");
        var held = Path.Combine(cluster.FaultDirectory, segment.MirrorA + ".held");
        await File.WriteAllTextAsync(trigger, "");
        IoStatus late;
        TimeSpan took;
        try
        {
            // The node arms the hold when it next polls its trigger directory (every 20 ms): a write that went through
            // without being held proves nothing, so it is tried again (bounded) until one is held.
            var attempts = 0;
            do
            {
                await Task.Delay(TimeSpan.FromMilliseconds(300));
                // The held mirror makes the first attempt wait for the append timeout (2 s), well past this 500 ms deadline.
                var started = Stopwatch.GetTimestamp();
                late = await controller.WriteAcknowledgedAsync(0, BlockOf(0x22), DateTime.UtcNow.AddMilliseconds(500).Ticks);
                took = Stopwatch.GetElapsedTime(started);
            }
            while (late == IoStatus.Ok && !File.Exists(held) && ++attempts < 10);
        }
        finally
        {
            File.Delete(trigger);
        }

        Assert.True(late == IoStatus.IoError, $"the write answered {late} after {took.TotalMilliseconds:F0} ms");
        Assert.True(took >= TimeSpan.FromMilliseconds(500), $"answered after {took.TotalMilliseconds:F0} ms, before its deadline");

        // The writer moved on: a write in time to the same block is acknowledged and read back.
        Assert.Equal(IoStatus.Ok, await controller.WriteAcknowledgedAsync(0, BlockOf(0x33), WriteDeadline.FromNow()));
        Assert.Equal(BlockOf(0x33), (await volume.ReadAsync(0, BlockPattern.BlockBytes)).Data!.AsSpan(0, BlockPattern.BlockBytes).ToArray());
        Assert.NotEqual(segment.SegmentId, (await cluster.OpenSegmentAsync("deadline-retry")).SegmentId);
    }

    private static byte[] BlockOf(byte value) => Enumerable.Repeat(value, BlockPattern.BlockBytes).ToArray();
}
