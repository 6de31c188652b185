using System.Diagnostics;
using Converge.DataPath;
using Converge.Grains.Cluster;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Controller;

/// <summary>
/// Surviving a deactivation the volume did not ask for. When a silo dies, the runtime deactivates every activation whose
/// grain directory entry that silo held, on every other silo, this node's controller among them. Left at that, an
/// attached volume nobody sends I/O to would keep its open segment unsealed and its sealed segments in the catalogue
/// until the next attach, with no lease renewals and no destage pruning. So the departing activation hands over: it
/// asks a new activation here to attach again (a new epoch, full recovery, the cache kept since this node held the
/// previous epoch) for the client handles it held.
/// </summary>
public sealed partial class VolumeControllerGrain
{
    private const int ResumeAttempts = 20;
    private static readonly TimeSpan ResumeRetryDelay = TimeSpan.FromMilliseconds(500);

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        RevokeReads();
        if (_attachment is not { } attachment || _lost)
        {
            return Task.CompletedTask;
        }

        _leaseTimer?.Dispose();
        _leaseTimer = null;
        StopMaintenance();
        LogDeactivatedWhileAttached(_name, localNode.Name, attachment.Epoch, reason.ReasonCode.ToString(), reason.Description);
        if (reason.ReasonCode != DeactivationReasonCode.ShuttingDown)
        {
            var successor = GrainFactory.GetGrain<IVolumeControllerGrain>(this.GetPrimaryKeyString());
            var handles = _handles.Snapshot();
            var name = _name;
            _ = Task.Run(() => HandOverAsync(successor, name, attachment.Epoch, handles), CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    public async Task<bool> ResumeAsync(ulong heldEpoch, HandleHold[] handles)
    {
        var handleIds = Array.ConvertAll(handles, h => h.Id);
        await _openClose.WaitAsync();
        try
        {
            if (_attachment is not null)
            {
                // I/O (or an open) reached this activation first and attached it already: the departing activation's
                // clients hold it too. An earlier attempt that failed left nothing attached and is simply tried again.
                _handles.Adopt(handles, Stopwatch.GetTimestamp());
                return true;
            }

            var current = await Volume.GetAsync();
            if (current.Volume is not { } volume || volume.AttachedNode != localNode.Name || volume.Epoch != heldEpoch)
            {
                LogNotResumed(_name, localNode.Name, heldEpoch, current.Volume?.AttachedNode ?? "(none)", current.Volume?.Epoch ?? 0);
                return true;
            }

            if (handleIds.Length > 0 && Array.TrueForAll(handleIds, _handles.WasClosed))
            {
                // Every client of the departing activation closed here before this call arrived (its close found no
                // activation that knew it). Attaching would hold the volume for nobody, renewing its lease for good, and
                // no other node could take it over. Detach what the departing activation held instead: the next holder
                // fences and seals what it left open. And count as opened, as after a close: I/O of those clients still
                // in flight is answered NotAttached instead of attaching implicitly, for nobody again.
                _opened = true;
                LogNotResumedClosed(_name, localNode.Name, heldEpoch, handleIds.Length);
                try
                {
                    await Volume.DetachAsync(localNode.Name, heldEpoch);
                }
                catch (Exception e) when (CallFailure.Is(e))
                {
                    // The lease lapses on its own.
                }

                return true;
            }

            var reply = await OpenCoreAsync();
            if (reply.Error != Converge.Volumes.VolumeError.None)
            {
                return false;
            }

            _handles.Adopt(handles, Stopwatch.GetTimestamp());
            return true;
        }
        finally
        {
            _openClose.Release();
        }
    }

    /// <summary>Runs outside the departing activation: asks its successor to resume, bounded in attempts.</summary>
    private async Task HandOverAsync(IVolumeControllerGrain successor, string name, ulong epoch, HandleHold[] handles)
    {
        for (var attempt = 1; attempt <= ResumeAttempts; attempt++)
        {
            await Task.Delay(ResumeRetryDelay);
            try
            {
                if (await successor.ResumeAsync(epoch, handles))
                {
                    return;
                }
            }
            catch (Exception e) when (CallFailure.Is(e))
            {
                // The departing activation may not be gone yet, or the control plane is busy: asked again.
            }
        }

        LogResumeGaveUp(name, localNode.Name, ResumeAttempts);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name} on {Node}: controller deactivated while attached at epoch {Epoch} ({Reason}: {Description}); attaching again in a new activation")]
    private partial void LogDeactivatedWhileAttached(string name, string node, ulong epoch, string reason, string description);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} on {Node}: not resumed, it moved on since epoch {HeldEpoch} (now on {Holder} at epoch {Epoch})")]
    private partial void LogNotResumed(string name, string node, ulong heldEpoch, string holder, ulong epoch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Volume {Name} on {Node}: not resumed, the {Handles} client handle(s) held at epoch {HeldEpoch} closed meanwhile; detaching")]
    private partial void LogNotResumedClosed(string name, string node, ulong heldEpoch, int handles);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name} on {Node}: gave up attaching again after {Attempts} attempts; the next I/O attaches it")]
    private partial void LogResumeGaveUp(string name, string node, int attempts);
}
