using System.Diagnostics;
using Converge.Client;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Log;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>
/// A mirror whose commit is held, and a mirror whose fdatasync fails (EIO injected in a running storage silo's I/O layer):
/// acknowledgement waits for both mirrors, and a failed fsync fail-stops that node's log while writes move on.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class MirrorFaultTests(WritePathCluster cluster, ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Write_IsNotAcknowledged_UntilBothMirrorsCommit()
    {
        var volumeId = await cluster.CreateVolumeAsync("held", 16L << 20);
        var model = new BlockModel((uint)volumeId.GetHashCode(), 64);
        var buffer = new byte[BlockPattern.BlockBytes];
        await using var volume = new VolumeSession(cluster.Grains, "held", "compute-1");
        await model.WriteAcknowledgedAsync(volume, 0, buffer);
        var segment = await cluster.OpenSegmentAsync("held");
        var held = segment.MirrorA;
        var other = segment.MirrorB;
        var trigger = Path.Combine(cluster.FaultDirectory, held + ".hold-flush");
        var reached = Path.Combine(cluster.FaultDirectory, held + ".held");
        await File.WriteAllTextAsync(trigger, "");
        try
        {
            var write = model.WriteAsync(volume, 1, buffer);
            await TestCluster.WaitUntilAsync(() => Task.FromResult(File.Exists(reached)), Patience, $"{held} to block an fdatasync on the hold");
            // The other mirror commits the record; the write must still wait for the held one, unless the append
            // deadline (2 s) passed first: then the writer must have sealed and resent the record to a new pair.
            await TestCluster.WaitUntilAsync(
                async () => write.IsCompleted || (await SegmentOn(other, segment.SegmentId).GetEntriesAsync()).Entries.Any(e => e.OffsetBytes == BlockPattern.BlockBytes),
                Patience,
                $"{other} to commit the record for block 1");
            if (!write.IsCompleted)
            {
                File.Delete(trigger);
                await TestCluster.WaitUntilAsync(() => Task.FromResult(write.IsCompleted), Patience, "the write to be acknowledged after the hold was released");
                Assert.Equal(IoStatus.Ok, await write);
                output.WriteLine("acknowledged only after the held mirror was released");
            }
            else
            {
                Assert.Equal(IoStatus.Ok, await write);
                output.WriteLine($"the append deadline passed while {held} was held: acknowledged on a new pair");
            }
        }
        finally
        {
            File.Delete(trigger);
        }

        await model.VerifyAsync(volume, "after the hold was released");
    }

    [Fact]
    public async Task FdatasyncEio_FailStopsThatLog_WhileWritesMoveToANewPair()
    {
        var volumeId = await cluster.CreateVolumeAsync("eio", 16L << 20);
        var model = new BlockModel((uint)volumeId.GetHashCode(), 1024);
        var buffer = new byte[BlockPattern.BlockBytes];
        await using var volume = new VolumeSession(cluster.Grains, "eio", "compute-1");
        await model.WriteAcknowledgedAsync(volume, 0, buffer);
        var segment = await cluster.OpenSegmentAsync("eio");
        // The primary is never restarted, so the poisoned node is the other mirror.
        var victim = segment.MirrorA == "storage-1" ? segment.MirrorB : segment.MirrorA;
        // The victim may have restarted in an earlier test: wait (bounded) until every silo routes to it again.
        await TestCluster.WaitUntilAsync(
            async () =>
            {
                try
                {
                    await cluster.NodeGrain(victim).GetLogStatsAsync();
                    return true;
                }
                catch (Exception e) when (e is OrleansException or TimeoutException or Converge.Grains.Placement.NodeUnavailableException)
                {
                    return false;
                }
            },
            Patience,
            $"{victim}'s node grain to answer");
        // EIO is injected in the silo's I/O layer (the fault seam under the log), armed from outside the process.
        var trigger = Path.Combine(cluster.FaultDirectory, victim + ".fail-flush");
        await File.WriteAllTextAsync(trigger, "");
        try
        {
            // Write until the victim's log reports the failed fdatasync (bounded), then on: every write is acknowledged.
            long block = 1;
            var clock = Stopwatch.StartNew();
            while (!await PoisonedOrStoppedAsync(victim))
            {
                Assert.True(block < 512 && clock.Elapsed < Patience, $"{victim}'s log was not poisoned after {block} writes in {clock.Elapsed.TotalSeconds:0} s");
                await model.WriteAcknowledgedAsync(volume, block++, buffer);
            }

            for (var n = 0; n < 100; n++)
            {
                await model.WriteAcknowledgedAsync(volume, block++, buffer);
            }

            output.WriteLine($"{block} blocks written; {model.FailedWrites} writes not acknowledged");
        }
        finally
        {
            File.Delete(trigger);
        }

        var current = await cluster.OpenSegmentAsync("eio");
        Assert.DoesNotContain(victim, new[] { current.MirrorA, current.MirrorB });
        await model.VerifyAsync(volume, $"after EIO on {victim}");

        // Fail-stop: with the trigger gone, the poisoned log still refuses every append (never retried). A silo that
        // stopped altogether is fail-stop too; then there is nothing left to probe.
        if (!Stopped(victim))
        {
            var stats = await cluster.NodeGrain(victim).GetLogStatsAsync();
            Assert.True(stats.Poisoned, $"{victim} is healthy again: {stats}");
            using var probe = LogRecord.EncodePooled(LogRecordHeader.ForWrite(volumeId, new Lsn(999, 1), Guid.NewGuid(), 0, buffer.Length), buffer);
            var status = await SegmentOn(victim, Guid.NewGuid()).AppendCommittedAsync(probe.Memory.ToArray());
            Assert.Equal(MirrorStatus.Faulted, status);
            cluster.Cluster.Local.Kill(victim);
        }
        else
        {
            output.WriteLine($"{victim} stopped after the fdatasync failure (fail-stop by exit)");
        }

        // A restart recovers the log: everything committed before the fault is served, and it takes appends again.
        await cluster.RestartAsync(victim);
        // Calls may still be routed to the killed instance until membership has declared it dead: bounded retries.
        await cluster.WaitUntilLogHealthyAsync(victim, Patience);
        await model.VerifyAsync(volume, $"after {victim} restarted");
    }

    private bool Stopped(string node) => !Client.Local.SiloProcess.IsRunning(cluster.Pid(node), node);

    /// <summary>True once the node's log reports the failed fdatasync, or the node's process has exited.</summary>
    private async Task<bool> PoisonedOrStoppedAsync(string node)
    {
        if (Stopped(node))
        {
            return true;
        }

        try
        {
            return (await cluster.NodeGrain(node).GetLogStatsAsync()).Poisoned;
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or Converge.Grains.Placement.NodeUnavailableException)
        {
            return Stopped(node);
        }
    }

    private ILogSegmentGrain SegmentOn(string node, Guid segmentId) =>
        cluster.Grains.GetGrain<ILogSegmentGrain>(NodeRoles.PinnedKey(node, segmentId.ToString("N")));
}
