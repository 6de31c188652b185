using System.Diagnostics;
using Converge.DataPath;

namespace Converge.Tests.ReadPath;

internal sealed partial class ReadModelRun
{
    private const int VerifyChunkBytes = 1024 * 1024;

    /// <summary>
    /// With nothing in flight, waits until the last written block is served by the extents: the idle segment was
    /// sealed, destaged on both mirrors and pruned from the dirty map. Each probe evicts the block here and reads it
    /// (checked against the model), and the holder's counters say which tier answered.
    /// </summary>
    private async Task WaitForDestageAsync(ReadModelOp op)
    {
        if (_lastWrittenBlock < 0)
        {
            return;
        }

        var clock = Stopwatch.StartNew();
        var probes = 0;
        while (true)
        {
            probes++;
            // Evicted on both nodes: otherwise a block written before the last move comes from the previous holder's
            // cache (a peer hit, neither log nor extents) and the probe would wait for a tier it is never sent to.
            await CacheOf(_holder).EvictAsync(volume, _lastWrittenBlock * BlockBytes, BlockBytes);
            await CacheOf(Other).EvictAsync(volume, _lastWrittenBlock * BlockBytes, BlockBytes);
            var before = await ReadPathSupport.StatsAsync(cluster, _holder);
            var offset = _lastWrittenBlock * BlockBytes;
            var expect = new ReadExpectation(_model, offset, BlockBytes, []);
            var reply = await _handle!.ReadAsync(offset, BlockBytes);
            var problem = reply.Status != IoStatus.Ok ? $"answered {reply.Status}" : expect.Check(reply.Data);
            if (problem is not null)
            {
                throw Failure($"{op}: probe read of block {_lastWrittenBlock} on {_holder}: {problem}" +
                    (reply.Status == IoStatus.Ok ? await ExplainAsync(expect, offset, reply.Data) : ""));
            }

            var after = await ReadPathSupport.StatsAsync(cluster, _holder);
            if (after.LogReads == before.LogReads && after.ExtentReads > before.ExtentReads)
            {
                output.WriteLine($"{op}: block {_lastWrittenBlock} served by the extents after {clock.Elapsed.TotalSeconds:0.0} s ({probes} probes)");
                return;
            }

            if (clock.Elapsed > DestageTimeout)
            {
                throw Failure($"{op}: block {_lastWrittenBlock} was still not served by the extents {DestageTimeout.TotalSeconds:0} s after the last write (never sealed, destaged or pruned)");
            }

            await Task.Delay(250);
        }
    }

    /// <summary>Reads the whole volume on the current holder and compares it with the model.</summary>
    private async Task VerifyWholeVolumeAsync()
    {
        for (long offset = 0; offset < volumeBytes; offset += VerifyChunkBytes)
        {
            var length = (int)Math.Min(VerifyChunkBytes, volumeBytes - offset);
            var expect = new ReadExpectation(_model, offset, length, []);
            var reply = await _handle!.ReadAsync(offset, length);
            if (reply.Status != IoStatus.Ok)
            {
                throw Failure($"final read of [{offset}, +{length}) on {_holder} answered {reply.Status}");
            }

            if (expect.Check(reply.Data) is { } problem)
            {
                throw Failure($"final read of [{offset}, +{length}) on {_holder}: {problem}{await ExplainAsync(expect, offset, reply.Data)}");
            }
        }
    }
}
