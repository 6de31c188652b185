using System.Diagnostics;
using Converge.DataPath;

namespace Converge.Grains.Controller;

/// <summary>
/// Backpressure for large records (the 64 KiB pieces of big writes), which go to the mirrors one call each rather than
/// in batches. Without a bound, 32 MiB of 1 MiB writes became 512 calls at once; on a slow log the last of them waited
/// in the storage silo's queue past the 2 s append timeout, counted as a mirror fault, and the writes failed with EIO.
/// Now at most a window of bytes is out per volume and the rest waits here, where waiting costs nothing but time (the
/// record has its LSN and an encoded buffer of its own, so the caller's deadline does not apply to it any more).
/// The window adapts to the mirrors' answer time: halved (once per round trip) when an append took longer than
/// <see cref="AppendLatencyTarget"/>, grown by a quarter of each record that came back in under half of it.
/// </summary>
public sealed partial class VolumeControllerGrain
{
    /// <summary>Well inside the 2 s append timeout, so a full window on a slow log still answers in time.</summary>
    internal static readonly TimeSpan AppendLatencyTarget = TimeSpan.FromMilliseconds(500);

    internal const int MinAppendWindowBytes = 256 * 1024;

    /// <summary>Eight 1 MiB writes: once grown to it, sequential writes at queue depth 8 do not wait on an uncapped log.</summary>
    internal const int MaxAppendWindowBytes = 8 * 1024 * 1024;

    /// <summary>
    /// Where a volume starts (and restarts after a move): low, because every volume of a burst starts here before any
    /// answer has been timed. At 2 MiB, eight volumes starting 1 MiB writes at once on two storage silos capped at 8 MB/s
    /// queued 16 MiB there, two seconds' worth, and failed; from 512 KiB a fast log grows it to the maximum within about
    /// 30 MiB of large writes (each answered record adds a quarter of its size).
    /// </summary>
    internal const int InitialAppendWindowBytes = 512 * 1024;

    private readonly Queue<QueuedAppend> _windowQueue = new();
    private int _appendWindowBytes = InitialAppendWindowBytes;
    private int _windowBytesInFlight;
    private long _windowShrunkAt;

    /// <summary>Sends a large record now if the window has room (or nothing is out), otherwise once earlier ones answer.</summary>
    private Task<(MirrorStatus A, MirrorStatus B)> AppendWindowedAsync(SegmentRecord segment, ReadOnlyMemory<byte> record)
    {
        if (_windowQueue.Count == 0 && FitsWindow(record.Length))
        {
            return AppendInWindowAsync(segment, record);
        }

        var queued = new QueuedAppend(segment, record);
        _windowQueue.Enqueue(queued);
        ControllerInstruments.WindowWaits.Add(1);
        return queued.Task;
    }

    private bool FitsWindow(int bytes) => _windowBytesInFlight == 0 || _windowBytesInFlight + bytes <= _appendWindowBytes;

    private async Task<(MirrorStatus A, MirrorStatus B)> AppendInWindowAsync(SegmentRecord segment, ReadOnlyMemory<byte> record)
    {
        _windowBytesInFlight += record.Length;
        var started = Stopwatch.GetTimestamp();
        try
        {
            return await AppendAloneAsync(segment, record);
        }
        finally
        {
            _windowBytesInFlight -= record.Length;
            AdjustWindow(record.Length, started, Stopwatch.GetTimestamp());
            PumpWindow();
        }
    }

    private void AdjustWindow(int bytes, long started, long now)
    {
        var took = Stopwatch.GetElapsedTime(started, now);
        if (took > AppendLatencyTarget)
        {
            // Appends already out when the window was last halved answer late too: one halving per round trip.
            if (_windowShrunkAt < started)
            {
                _appendWindowBytes = Math.Max(MinAppendWindowBytes, _appendWindowBytes / 2);
                _windowShrunkAt = now;
            }
        }
        else if (took < AppendLatencyTarget / 2)
        {
            _appendWindowBytes = Math.Min(MaxAppendWindowBytes, _appendWindowBytes + Math.Max(1, bytes / 4));
        }
    }

    private void PumpWindow()
    {
        while (_windowQueue.TryPeek(out var next) && FitsWindow(next.Record.Length))
        {
            _windowQueue.Dequeue();
            _ = CompleteFromWindowAsync(next);
        }
    }

    private async Task CompleteFromWindowAsync(QueuedAppend queued)
    {
        try
        {
            queued.TrySetResult(await AppendInWindowAsync(queued.Segment, queued.Record));
        }
        catch (Exception e)
        {
            // Not a mirror's failure (those are statuses): a defect, handed to the writer rather than lost.
            queued.TrySetException(e);
        }
    }
}
