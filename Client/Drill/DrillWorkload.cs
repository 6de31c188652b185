using System.Diagnostics;
using Converge.DataPath;

namespace Converge.Client.Drill;

/// <summary>
/// The verifying workload: writers stamp blocks they own (block % writers) with increasing versions, readers read
/// random written blocks and check them against the <see cref="DrillModel"/> while faults hit the cluster. Every
/// loop ends when the stop token fires; failed calls are paced so a dead node is not hammered.
/// </summary>
public sealed class DrillWorkload(DrillVolume volume, DrillModel model, RecoveryClock recovery, int writers, int readers, int seed)
{
    private const int ReadChunkBlocks = 64;
    private const int MaxFinalReadAttempts = 20;
    private static readonly TimeSpan FailurePause = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan FinalRetryPause = TimeSpan.FromMilliseconds(500);

    private long _writesAcknowledged;
    private long _writesFailed;
    private long _readsOk;
    private long _readsFailed;
    private long _lastAckTicks = Stopwatch.GetTimestamp();
    private long _longestStallTicks;

    public long WritesAcknowledged => Interlocked.Read(ref _writesAcknowledged);

    public long WritesFailed => Interlocked.Read(ref _writesFailed);

    public long ReadsOk => Interlocked.Read(ref _readsOk);

    public long ReadsFailed => Interlocked.Read(ref _readsFailed);

    /// <summary>The longest time without any acknowledged write so far, in milliseconds.</summary>
    public double LongestWriteStallMs =>
        Stopwatch.GetElapsedTime(0, Math.Max(Interlocked.Read(ref _longestStallTicks), Stopwatch.GetTimestamp() - Interlocked.Read(ref _lastAckTicks))).TotalMilliseconds;

    /// <summary>Runs every writer and reader until <paramref name="stop"/> fires.</summary>
    public Task RunAsync(CancellationToken stop)
    {
        var tasks = new List<Task>();
        for (var w = 0; w < writers; w++)
        {
            var writer = w;
            tasks.Add(Task.Run(() => WriteLoopAsync(writer, new Random(seed + writer), stop), CancellationToken.None));
        }

        for (var r = 0; r < readers; r++)
        {
            var reader = r;
            tasks.Add(Task.Run(() => ReadLoopAsync(new Random(seed + 1000 + reader), stop), CancellationToken.None));
        }

        return Task.WhenAll(tasks);
    }

    /// <summary>
    /// Reads back every block ever written, in chunks, and checks each against the model. A chunk that stays
    /// unreadable after bounded retries counts its written blocks as unverified. Returns both counts.
    /// </summary>
    public async Task<(long Checked, long Unverified)> VerifyAllAsync(IProgress<string>? progress, CancellationToken cancellationToken)
    {
        long unverified = 0;
        long checkedBlocks = 0;
        for (long first = 0; first < model.BlockCount; first += ReadChunkBlocks)
        {
            var count = (int)Math.Min(ReadChunkBlocks, model.BlockCount - first);
            var written = 0;
            for (var i = 0; i < count; i++)
            {
                written += model.Written(first + i) ? 1 : 0;
            }

            if (written == 0)
            {
                continue;
            }

            var reply = new VolumeReadReply(IoStatus.IoError, null);
            for (var attempt = 0; attempt < MaxFinalReadAttempts && reply.Status != IoStatus.Ok; attempt++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (attempt > 0)
                {
                    await Task.Delay(FinalRetryPause, cancellationToken);
                }

                reply = await volume.ReadAsync(first * BlockStamp.BlockBytes, count * BlockStamp.BlockBytes);
            }

            if (reply.Status != IoStatus.Ok || reply.Data is null)
            {
                unverified += written;
                progress?.Report($"blocks {first}..{first + count - 1} unreadable after {MaxFinalReadAttempts} attempts: {reply.Status}");
                continue;
            }

            for (var i = 0; i < count; i++)
            {
                var block = first + i;
                if (model.Written(block))
                {
                    model.Check(block, reply.Data.AsSpan(i * BlockStamp.BlockBytes, BlockStamp.BlockBytes), model.MinimumVisible(block));
                    checkedBlocks++;
                }
            }
        }

        progress?.Report($"verified {checkedBlocks} written blocks, {unverified} unreadable");
        return (checkedBlocks, unverified);
    }

    private async Task WriteLoopAsync(int writer, Random rng, CancellationToken stop)
    {
        var buffer = new byte[BlockStamp.BlockBytes];
        var ownedBlocks = model.BlockCount / writers;
        while (!stop.IsCancellationRequested)
        {
            var block = (rng.NextInt64(ownedBlocks) * writers) + writer;
            var version = model.BeginWrite(block);
            BlockStamp.Fill(buffer, model.VolumeId, block * BlockStamp.BlockBytes, version);
            var issued = Stopwatch.GetTimestamp();
            var status = await volume.WriteAsync(block * BlockStamp.BlockBytes, buffer);
            if (status == IoStatus.Ok)
            {
                model.Acknowledge(block, version);
                recovery.WriteAcknowledged(issued);
                Interlocked.Increment(ref _writesAcknowledged);
                NoteAcknowledgement();
            }
            else
            {
                Interlocked.Increment(ref _writesFailed);
                await PauseAfterFailureAsync(stop);
            }
        }
    }

    private async Task ReadLoopAsync(Random rng, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var block = -1L;
            for (var probe = 0; probe < 8 && block < 0; probe++)
            {
                var candidate = rng.NextInt64(model.BlockCount);
                block = model.Written(candidate) ? candidate : -1;
            }

            if (block < 0)
            {
                // Early in a run few blocks are written yet.
                await PauseAfterFailureAsync(stop);
                continue;
            }

            var minimum = model.MinimumVisible(block);
            var reply = await volume.ReadAsync(block * BlockStamp.BlockBytes, BlockStamp.BlockBytes);
            if (reply.Status == IoStatus.Ok && reply.Data is { } data)
            {
                model.Check(block, data, minimum);
                Interlocked.Increment(ref _readsOk);
            }
            else
            {
                Interlocked.Increment(ref _readsFailed);
                await PauseAfterFailureAsync(stop);
            }
        }
    }

    private void NoteAcknowledgement()
    {
        var now = Stopwatch.GetTimestamp();
        var previous = Interlocked.Exchange(ref _lastAckTicks, now);
        var gap = now - previous;
        var longest = Interlocked.Read(ref _longestStallTicks);
        while (gap > longest && Interlocked.CompareExchange(ref _longestStallTicks, gap, longest) != longest)
        {
            longest = Interlocked.Read(ref _longestStallTicks);
        }
    }

    private static async Task PauseAfterFailureAsync(CancellationToken stop)
    {
        try
        {
            await Task.Delay(FailurePause, stop);
        }
        catch (OperationCanceledException)
        {
            // The run is over; the loop condition ends it.
        }
    }
}
