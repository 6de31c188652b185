using Converge.Client;
using Converge.DataPath;
using Orleans;

namespace Converge.Tests.WritePath;

/// <summary>
/// A volume handle that attaches again when the controller answers <see cref="IoStatus.NotAttached"/> (its attachment
/// was lost while a storage silo died), as an NBD client reconnects. Reattachments are counted and reported: each is
/// a takeover with a fence and a dirty-map rebuild, so reads after it still prove durability.
/// </summary>
public sealed class VolumeSession(IClusterClient cluster, string volumeName, string computeNode) : IAsyncDisposable
{
    private const int MaxReattachesPerCall = 3;
    private readonly SemaphoreSlim _reopen = new(1, 1);
    private VolumeHandle? _handle;
    private int _reattaches;

    public int Reattaches => Volatile.Read(ref _reattaches);

    /// <summary>How many times a call is retried while the cluster routes around a silo that just died.</summary>
    private const int MaxTransientRetries = 40;
    private static readonly TimeSpan TransientDelay = TimeSpan.FromMilliseconds(500);

    public async Task<VolumeHandle> HandleAsync() => _handle ??= await OpenWithRetriesAsync();

    /// <summary>
    /// Opens the volume, retrying (bounded) while calls still reach a silo that just died: until membership declares it
    /// dead, grain lookups routed to it fail, as any client sees for a few seconds after a crash.
    /// </summary>
    private async Task<VolumeHandle> OpenWithRetriesAsync()
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await VolumeHandle.OpenAsync(cluster, volumeName, computeNode);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException && attempt < MaxTransientRetries)
            {
                await Task.Delay(TransientDelay);
            }
            catch (VolumeIoException e) when (attempt < MaxTransientRetries
                && (e.Error == nameof(Converge.Volumes.VolumeError.AttachedElsewhere)
                    || (e.Error == nameof(Converge.Volumes.VolumeError.InvalidNode) && e.Message.StartsWith("cannot attach", StringComparison.Ordinal))))
            {
                // The previous holder's graceful detach did not reach the control plane (a silo had just died): its
                // lease (10 s) lapses on its own, within the retry budget (40 x 0.5 s). Or the attach's recovery met a
                // silo that had just died (the attach was undone): an NBD client would reconnect the same way.
                await Task.Delay(TransientDelay);
            }
        }
    }

    public async Task<IoStatus> WriteAsync(long offsetBytes, byte[] data)
    {
        var status = IoStatus.NotAttached;
        for (var attempt = 0; attempt <= MaxReattachesPerCall && status == IoStatus.NotAttached; attempt++)
        {
            var handle = await HandleAsync();
            status = await handle.WriteAsync(offsetBytes, data);
            if (status == IoStatus.NotAttached)
            {
                await ReattachAsync(handle);
            }
        }

        return status;
    }

    public async Task<VolumeReadReply> ReadAsync(long offsetBytes, int lengthBytes)
    {
        var reply = new VolumeReadReply(IoStatus.NotAttached, null);
        var transient = 0;
        for (var attempt = 0; attempt <= MaxReattachesPerCall && reply.Status == IoStatus.NotAttached; attempt++)
        {
            var handle = await HandleAsync();
            try
            {
                reply = await handle.ReadAsync(offsetBytes, lengthBytes);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException && transient++ < MaxTransientRetries)
            {
                await Task.Delay(TransientDelay);
                attempt--;
                continue;
            }

            if (reply.Status == IoStatus.NotAttached)
            {
                await ReattachAsync(handle);
            }
        }

        return reply;
    }

    public async ValueTask DisposeAsync()
    {
        if (_handle is not null)
        {
            await _handle.DisposeAsync();
        }
    }

    private async Task ReattachAsync(VolumeHandle failed)
    {
        await _reopen.WaitAsync();
        try
        {
            if (_handle == failed)
            {
                Interlocked.Increment(ref _reattaches);
                await failed.DisposeAsync();
                _handle = await OpenWithRetriesAsync();
            }
        }
        finally
        {
            _reopen.Release();
        }
    }
}
