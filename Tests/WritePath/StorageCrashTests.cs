using System.Diagnostics;
using Converge.Client;
using Converge.DataPath;
using Converge.Tests.Infrastructure;
using Converge.Volumes;
using Xunit;
using Xunit.Abstractions;

namespace Converge.Tests.WritePath;

/// <summary>
/// Storage silos SIGKILLed under concurrent writes, and log chunks damaged while a node is down, on real silo processes:
/// every ACKNOWLEDGED block must read back exactly, right after the crash and from a cold cache after restart.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class StorageCrashTests(WritePathCluster cluster, ITestOutputHelper output)
{
    private const long WorkingSetBlocks = 1024;
    private const int Writers = 4;

    /// <summary>
    /// The randomized crash loop. CONVERGE_CRASH_ITERATIONS (default 50), CONVERGE_CRASH_SECONDS (a time limit instead)
    /// and CONVERGE_CRASH_SEED (replays a run) tune it; scripts/crash-soak.sh runs it for longer.
    /// </summary>
    [Fact, Trait("Category", "CrashSoak")]
    public async Task AcknowledgedWrites_SurviveRandomStorageSiloKills()
    {
        var iterations = EnvInt("CONVERGE_CRASH_ITERATIONS", 50);
        var seconds = EnvInt("CONVERGE_CRASH_SECONDS", 0);
        var seed = EnvInt("CONVERGE_CRASH_SEED", Random.Shared.Next());
        output.WriteLine($"crash loop: seed {seed} (replay with CONVERGE_CRASH_SEED={seed}), iterations {iterations}, time limit {seconds} s");
        var rng = new Random(seed);
        var volumeId = await cluster.CreateVolumeAsync("crash-loop", 64L << 20);
        var model = new BlockModel((uint)volumeId.GetHashCode() | 0x100000000UL, WorkingSetBlocks);
        var clock = Stopwatch.StartNew();
        Task? restarting = null;
        var done = 0;
        var reattaches = 0;
        for (var i = 0; i < iterations && (seconds == 0 || clock.Elapsed < TimeSpan.FromSeconds(seconds)); i++)
        {
            var compute = $"compute-{(i % 2) + 1}";
            var victim = rng.Next(2) == 0 ? "storage-2" : "storage-3";
            var killAfterAcks = rng.Next(10, 150);
            var writesPerWriter = 50 + rng.Next(25);
            try
            {
                // A takeover on the other compute node: fenced, dirty map rebuilt from the catalogue, cache cold.
                await using var volume = new VolumeSession(cluster.Grains, "crash-loop", compute);
                await model.VerifyAsync(volume, $"iteration {i}: cold reads on {compute} after takeover");
                if (restarting is not null)
                {
                    await restarting;
                    restarting = null;
                }

                var writes = RunWritersAsync(volume, model, rng.Next(), writesPerWriter, killAfterAcks, out var killSignal);
                await WaitAsync(killSignal, TimeSpan.FromSeconds(60), $"iteration {i}: {killAfterAcks} acknowledged writes before the kill");
                cluster.Cluster.Local.Kill(victim);
                await WaitAsync(writes, TimeSpan.FromSeconds(90), $"iteration {i}: writers to finish after {victim} was killed");
                await model.VerifyAsync(volume, $"iteration {i}: reads right after SIGKILL of {victim}");
                restarting = cluster.RestartAsync(victim);
                reattaches += volume.Reattaches;
                output.WriteLine($"iteration {i}: killed {victim} after {killAfterAcks} acks, writes on {compute}, {volume.Reattaches} reattaches; {clock.Elapsed.TotalSeconds:0.0} s");
            }
            catch (Exception e)
            {
                // The cluster is shared with the other write-path tests: bring the victim back before failing, or each of
                // them would fail in turn for want of a storage node.
                await BringBackAsync(victim, restarting);
                if (e is Xunit.Sdk.XunitException)
                {
                    throw;
                }

                throw new InvalidOperationException($"iteration {i} (seed {seed}, victim {victim}, compute {compute}) failed: {e.Message}", e);
            }

            done++;
        }

        if (restarting is not null)
        {
            await restarting;
        }

        await using (var final = new VolumeSession(cluster.Grains, "crash-loop", $"compute-{(done % 2) + 1}"))
        {
            await model.VerifyAsync(final, "after the last restart, cold");
        }

        output.WriteLine($"crash loop: {done} iterations in {clock.Elapsed.TotalSeconds:0} s; {model.AcknowledgedWrites} acknowledged, {model.FailedWrites} failed writes, {reattaches} reattaches");
        Assert.True(done >= Math.Min(iterations, 1), "no iteration ran");
        Assert.True(model.AcknowledgedWrites > done * 50L, $"only {model.AcknowledgedWrites} writes were acknowledged in {done} iterations");
    }

    [Fact]
    public async Task AcknowledgedWrites_SurviveATornLogTail_OnOneMirror()
    {
        await DamageOneMirrorAsync("torn-tail", (logDirectory, _) =>
        {
            var (path, lastByte) = NewestChunk(logDirectory);
            // Cut the last record in half and everything after it, as a crash in the middle of its write would.
            var cutAt = Math.Max(0, lastByte - 2100);
            using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
            file.Position = cutAt;
            file.Write(new byte[lastByte + 1 - cutAt]);
            file.Flush(true);
            return $"zeroed {path} from {cutAt} to {lastByte}";
        });
    }

    [Fact]
    public async Task AcknowledgedWrites_SurviveABitFlipMidLog_OnTheMirrorReadFirst()
    {
        await DamageOneMirrorAsync("bit-flip", (logDirectory, volumeId) =>
        {
            // The chunk holding most of the volume's records: after earlier tests' writes the log may have recycled
            // chunks, so the highest-numbered file need not be the one written last.
            var id = volumeId.ToByteArray();
            var (path, hits) = Directory.GetFiles(logDirectory, "*.log")
                .Select(chunk => (Path: chunk, Hits: RecordsOf(File.ReadAllBytes(chunk), id)))
                .MaxBy(chunk => chunk.Hits.Count);

            Assert.True(hits.Count > 4, $"found {hits.Count} records of the volume in {path}");
            // A record in the middle of the log, with later commits after it: corruption, not a torn tail.
            var flipAt = hits[hits.Count / 2] + 1500;
            using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            file.Position = flipAt;
            var b = file.ReadByte();
            file.Position = flipAt;
            file.WriteByte((byte)(b ^ 0x10));
            file.Flush(true);
            return $"flipped a bit at {flipAt} of {path} (record {hits.Count / 2} of {hits.Count})";
        });
    }

    /// <summary>
    /// Writes distinct blocks, kills the first mirror of the open segment (not storage-1), damages its log while it is
    /// down, restarts it, writes on (the writer must leave the segment the restarted node recovered), then verifies from
    /// a cold cache on the other compute node, where reads go to the damaged mirror first.
    /// </summary>
    private async Task DamageOneMirrorAsync(string name, Func<string, Guid, string> damage)
    {
        var volumeId = await cluster.CreateVolumeAsync(name, 16L << 20);
        var model = new BlockModel((uint)volumeId.GetHashCode() | 0x200000000UL, 512);
        var buffer = new byte[BlockPattern.BlockBytes];
        var volume = new VolumeSession(cluster.Grains, name, "compute-1");
        await volume.HandleAsync();
        SegmentRecord? open = null;
        for (var attempt = 0; attempt < 12; attempt++)
        {
            open = await cluster.OpenSegmentAsync(name);
            if (open.MirrorA != "storage-1")
            {
                break;
            }

            // The first mirror is the primary, which is never killed: detach and attach again for a fresh pair.
            await volume.DisposeAsync();
            volume = new VolumeSession(cluster.Grains, name, "compute-1");
            await volume.HandleAsync();
        }

        try
        {
            Assert.NotEqual("storage-1", open!.MirrorA);
            for (long block = 0; block < 300; block++)
            {
                await model.WriteAcknowledgedAsync(volume, block, buffer);
            }

            // The segment may have been sealed for idleness meanwhile; the victim still holds the records it mirrored.
            var victim = open.MirrorA;
            cluster.Cluster.Local.Kill(victim);
            try
            {
                output.WriteLine(damage(cluster.LogDirectory(victim), volumeId));
            }
            finally
            {
                // Also when the damage could not be done: the shared cluster's later tests need the node.
                await cluster.RestartAsync(victim);
            }

            for (long block = 300; block < 400; block++)
            {
                await model.WriteAcknowledgedAsync(volume, block, buffer);
            }

            Assert.NotEqual(open.SegmentId, (await cluster.OpenSegmentAsync(name)).SegmentId);
        }
        finally
        {
            await volume.DisposeAsync();
        }

        await using var cold = new VolumeSession(cluster.Grains, name, "compute-2");
        await model.VerifyAsync(cold, $"{name}: cold reads after {open.MirrorA} restarted with a damaged log");
        for (long block = 400; block < 512; block++)
        {
            await model.WriteAcknowledgedAsync(cold, block, buffer);
        }

        await model.VerifyAsync(cold, $"{name}: after more writes");

        // The victim came back with its copy of the old segment unsealed (the writer sealed it on the other mirror
        // only): it seals and destages that copy itself, so the segment leaves its log and the volume's catalogue.
        var copy = cluster.Grains.GetGrain<ILogSegmentGrain>(Converge.Cluster.NodeRoles.PinnedKey(open.MirrorA, open.SegmentId.ToString("N")));
        var catalogue = cluster.Grains.GetGrain<Converge.Volumes.IVolumeGrain>(name);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (!await IsDestagedAsync(copy) || (await catalogue.GetSegmentsAsync()).Any(s => s.SegmentId == open.SegmentId))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name}: segment {open.SegmentId} still undestaged on {open.MirrorA} or still catalogued 90 s after its restart");
            await Task.Delay(250);
        }
    }

    /// <summary>False also while the restarted node is not yet known to every silo as a member (asked again).</summary>
    private static async Task<bool> IsDestagedAsync(ILogSegmentGrain copy)
    {
        try
        {
            return await copy.IsDestagedAsync();
        }
        catch (Exception e) when (e is Converge.Grains.Placement.NodeUnavailableException or OrleansException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Where <paramref name="id"/> occurs in <paramref name="bytes"/> (at most 10,000 places).</summary>
    private static List<int> RecordsOf(byte[] bytes, byte[] id)
    {
        var hits = new List<int>();
        for (var at = bytes.AsSpan().IndexOf(id); at >= 0 && hits.Count < 10_000;)
        {
            hits.Add(at);
            var next = bytes.AsSpan(at + 1).IndexOf(id);
            at = next < 0 ? -1 : at + 1 + next;
        }

        return hits;
    }

    private static (string Path, long LastByte) NewestChunk(string logDirectory)
    {
        var path = Directory.GetFiles(logDirectory, "*.log").Order(StringComparer.Ordinal).Last();
        var bytes = File.ReadAllBytes(path);
        var last = bytes.AsSpan().LastIndexOfAnyExcept((byte)0);
        Assert.True(last > 0, $"{path} holds no frames");
        return (path, last);
    }

    private static Task RunWritersAsync(VolumeSession volume, BlockModel model, int seed, int writesPerWriter, int killAfterAcks, out Task killSignal)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        killSignal = signal.Task;
        var acks = 0;
        var writers = new Task[Writers];
        for (var w = 0; w < Writers; w++)
        {
            var writer = w;
            var rng = new Random(seed + writer);
            writers[w] = Task.Run(async () =>
            {
                var buffer = new byte[BlockPattern.BlockBytes];
                for (var n = 0; n < writesPerWriter; n++)
                {
                    // Writers own disjoint blocks, so one block's versions are written in order.
                    var block = (rng.NextInt64(WorkingSetBlocks / Writers) * Writers) + writer;
                    if (await model.WriteAsync(volume, block, buffer) == IoStatus.Ok && Interlocked.Increment(ref acks) == killAfterAcks)
                    {
                        signal.TrySetResult();
                    }
                }
            });
        }

        return Task.WhenAll(writers).ContinueWith(t => { signal.TrySetResult(); return t; }, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Restarts <paramref name="node"/> if it is down (or waits for its restart already under way); best effort.</summary>
    private async Task BringBackAsync(string node, Task? restarting)
    {
        try
        {
            if (restarting is null && !Client.Local.SiloProcess.IsRunning(cluster.Pid(node), node))
            {
                restarting = cluster.RestartAsync(node);
            }

            if (restarting is not null)
            {
                await restarting;
            }
        }
        catch (Exception e)
        {
            output.WriteLine($"could not bring {node} back: {e.Message}");
        }
    }

    private static async Task WaitAsync(Task task, TimeSpan timeout, string what)
    {
        if (await Task.WhenAny(task, Task.Delay(timeout)) != task)
        {
            throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
        }

        await task;
    }

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : fallback;
}
