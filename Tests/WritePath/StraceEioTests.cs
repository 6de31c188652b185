using System.Diagnostics;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>
/// fdatasync failing for real, below the process: a storage silo runs under <c>strace</c>, which makes the kernel call
/// return EIO from the Nth fdatasync on. Nothing in the silo is told; it must notice the error itself (a checked
/// fdatasync), fail-stop that log, and the writer must move to a new pair without losing an acknowledged write.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class StraceEioTests(WritePathCluster cluster, ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The fdatasync calls a storage silo makes before it serves (log and extent recovery, directory syncs) stay well
    /// below this, so it starts cleanly and the failures hit its first commits.
    /// </summary>
    private const int FirstFailingFdatasync = 40;

    [Fact]
    public async Task RealEio_OnFdatasync_FailStopsThatSilosLog_WritesMoveOn_AndNothingAcknowledgedIsLost()
    {
        var volumeId = await cluster.CreateVolumeAsync("eio-strace", 16L << 20);
        var model = new BlockModel((uint)volumeId.GetHashCode() ^ 0x5a5a5a5aU, 2048);
        var buffer = new byte[BlockPattern.BlockBytes];
        await using var volume = new VolumeSession(cluster.Grains, "eio-strace", "compute-1");
        await model.WriteAcknowledgedAsync(volume, 0, buffer);
        var segment = await cluster.OpenSegmentAsync("eio-strace");
        // The primary is never restarted, so the victim is the other mirror of the open segment.
        var victim = segment.MirrorA == "storage-1" ? segment.MirrorB : segment.MirrorA;
        cluster.Cluster.Local.Kill(victim);
        string[] wrapper =
        [
            "strace", "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync",
            "-e", $"inject=fdatasync:error=EIO:when={FirstFailingFdatasync}+", "--",
        ];
        await cluster.RestartAsync(victim, wrapper);
        output.WriteLine($"{victim} restarted under strace: fdatasync fails with EIO from call {FirstFailingFdatasync} on");
        try
        {
            // The writer meets the victim again when a new segment pair includes it (after its recovered segment is
            // sealed, or at an idle seal); keep writing, with idle gaps for the seal, until its log is poisoned.
            long block = 1;
            var clock = Stopwatch.StartNew();
            while (!await PoisonedOrStoppedAsync(victim))
            {
                Assert.True(clock.Elapsed < Patience, $"{victim}'s log was not poisoned after {block} writes in {clock.Elapsed.TotalSeconds:0} s");
                for (var n = 0; n < 20; n++)
                {
                    await model.WriteAcknowledgedAsync(volume, block++ % 2048, buffer);
                }

                var open = await cluster.OpenSegmentAsync("eio-strace");
                if (open.MirrorA != victim && open.MirrorB != victim)
                {
                    // Idle past the 2 s seal so the next segment gets a new (random) pair.
                    await Task.Delay(TimeSpan.FromSeconds(2.5));
                }
            }

            for (var n = 0; n < 100; n++)
            {
                await model.WriteAcknowledgedAsync(volume, block++ % 2048, buffer);
            }

            output.WriteLine($"{block} writes; {model.FailedWrites} not acknowledged; {victim} {(IsRunning(victim) ? "poisoned" : "exited")}");
            var current = await cluster.OpenSegmentAsync("eio-strace");
            Assert.DoesNotContain(victim, new[] { current.MirrorA, current.MirrorB });
            await model.VerifyAsync(volume, $"after real EIO on {victim}");
        }
        finally
        {
            // Kill the tracer and the silo under it, then bring the node back without strace.
            if (IsRunning(victim))
            {
                cluster.Cluster.Local.Kill(victim);
            }

            await cluster.RestartAsync(victim);
        }

        await cluster.WaitUntilLogHealthyAsync(victim, Patience);
        await model.VerifyAsync(volume, $"after {victim} restarted without faults");
    }

    private bool IsRunning(string node) => Client.Local.SiloProcess.IsRunning(cluster.Pid(node), node);

    private async Task<bool> PoisonedOrStoppedAsync(string node)
    {
        if (!IsRunning(node))
        {
            return true;
        }

        try
        {
            return (await cluster.NodeGrain(node).GetLogStatsAsync()).Poisoned;
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or Converge.Grains.Placement.NodeUnavailableException)
        {
            return !IsRunning(node);
        }
    }
}
