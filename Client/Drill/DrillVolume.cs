using System.Diagnostics;
using Converge.DataPath;
using Converge.Volumes;

namespace Converge.Client.Drill;

/// <summary>
/// The drill's client of one volume, as a VM host would hold it: attached on one compute node (the holder), opened
/// again when the controller answers <see cref="IoStatus.NotAttached"/>, and moved to another compute node by the
/// fault scheduler when the holder dies. A failed call is reported as <see cref="IoStatus.IoError"/>, never thrown:
/// the workload treats it as an unacknowledged write or an unavailable read.
/// </summary>
public sealed class DrillVolume(IClusterClient cluster, string volumeName, string holder) : IAsyncDisposable
{
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _switch = new(1, 1);
    private readonly Dictionary<string, int> _failures = [];
    private VolumeHandle? _handle;
    private string _holder = holder;
    private long _opens;
    private long _moves;

    /// <summary>The compute node the volume is (to be) attached on.</summary>
    public string Holder => Volatile.Read(ref _holder);

    public long Opens => Interlocked.Read(ref _opens);

    public long Moves => Interlocked.Read(ref _moves);

    public async Task<IoStatus> WriteAsync(long offsetBytes, ReadOnlyMemory<byte> data)
    {
        var handle = await HandleAsync();
        if (handle is null)
        {
            return IoStatus.IoError;
        }

        IoStatus status;
        try
        {
            status = await handle.WriteAsync(offsetBytes, data);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            NoteFailure(e);
            status = IoStatus.IoError;
        }

        if (status == IoStatus.NotAttached || handle.NodeLost)
        {
            await ReopenAsync(handle);
        }

        return status;
    }

    public async Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes)
    {
        var handle = await HandleAsync();
        if (handle is null)
        {
            return new VolumeReadReply(IoStatus.IoError, null);
        }

        VolumeReadReply reply;
        try
        {
            reply = await handle.ReadAsync(offsetBytes, lengthBytes);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            NoteFailure(e);
            reply = new VolumeReadReply(IoStatus.IoError, null);
        }

        if (reply.Status == IoStatus.NotAttached || handle.NodeLost)
        {
            await ReopenAsync(handle);
        }

        return reply;
    }

    /// <summary>
    /// Moves the volume to <paramref name="node"/>: attaches it there with a new epoch (fencing the old holder; with
    /// <paramref name="force"/> even while the old holder's lease runs, the operator's path for a node known dead), then
    /// opens it there. The old handle is dropped without a close: its node is dead or hung. Returns null on success,
    /// else why the attach was refused.
    /// </summary>
    public async Task<string?> MoveToAsync(string node, bool force)
    {
        await _switch.WaitAsync();
        try
        {
            AttachResult result;
            try
            {
                result = await cluster.GetGrain<IVolumeGrain>(volumeName).AttachAsync(node, force);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException)
            {
                return e.Message;
            }

            if (!result.Ok)
            {
                return result.Message;
            }

            Volatile.Write(ref _holder, node);
            _handle = null;
            Interlocked.Increment(ref _moves);
            return null;
        }
        finally
        {
            _switch.Release();
        }
    }

    /// <summary>
    /// Exception types I/O calls failed with, and how often: a timeout or a dead silo is expected under faults; anything
    /// else (a serialization failure, say) is a finding worth reading.
    /// </summary>
    public IReadOnlyDictionary<string, int> Failures
    {
        get
        {
            lock (_failures)
            {
                return new Dictionary<string, int>(_failures);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_handle is { } handle)
        {
            _handle = null;
            await CloseQuietlyAsync(handle);
        }
    }

    /// <summary>The open handle on the holder, opening one if needed; null when the open failed (tried again next call).</summary>
    private async Task<VolumeHandle?> HandleAsync()
    {
        if (Volatile.Read(ref _handle) is { } open)
        {
            return open;
        }

        // After a failed open, wait out a short backoff instead of queueing on the switch again at once: a hung holder
        // would otherwise keep the switch busy with one open after another and starve a move away from it.
        var backoff = Stopwatch.GetElapsedTime(Interlocked.Read(ref _openFailedTicks));
        if (Interlocked.Read(ref _openFailedTicks) != 0 && backoff < OpenBackoff)
        {
            await Task.Delay(OpenBackoff - backoff);
            return null;
        }

        await _switch.WaitAsync();
        try
        {
            if (_handle is null)
            {
                try
                {
                    // Bounded well below the open's own 30 s timeout, for the same reason.
                    using var timeout = new CancellationTokenSource(OpenTimeout);
                    _handle = await VolumeHandle.OpenAsync(cluster, volumeName, _holder, timeout.Token);
                    Interlocked.Increment(ref _opens);
                    Interlocked.Exchange(ref _openFailedTicks, 0);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    NoteFailure(e);
                    Interlocked.Exchange(ref _openFailedTicks, Stopwatch.GetTimestamp());
                    return null;
                }
            }

            return _handle;
        }
        finally
        {
            _switch.Release();
        }
    }

    private static readonly TimeSpan OpenTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan OpenBackoff = TimeSpan.FromSeconds(1);
    private long _openFailedTicks;

    /// <summary>
    /// The controller lost its attachment (a storage silo died, or its lease lapsed), or its node left the cluster: close
    /// the handle so the next call reattaches (on the holder, which the fault scheduler moves off a dead node).
    /// </summary>
    private async Task ReopenAsync(VolumeHandle failed)
    {
        await _switch.WaitAsync();
        try
        {
            if (_handle == failed)
            {
                _handle = null;
                await CloseQuietlyAsync(failed);
            }
        }
        finally
        {
            _switch.Release();
        }
    }

    private void NoteFailure(Exception e)
    {
        lock (_failures)
        {
            var name = e.GetType().Name;
            _failures[name] = _failures.GetValueOrDefault(name) + 1;
        }
    }

    private static async Task CloseQuietlyAsync(VolumeHandle handle)
    {
        try
        {
            await handle.DisposeAsync().AsTask().WaitAsync(CloseTimeout);
        }
        catch (Exception e) when (Grains.Cluster.CallFailure.Is(e))
        {
            // The node is dead or hung: the next holder's attach fences whatever this activation still holds.
        }
    }
}
