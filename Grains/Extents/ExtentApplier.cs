using Converge.Grains.Io;
using Converge.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Extents;

/// <summary>
/// Applies extent writes to one of this node's placement-group replicas and answers as a replica answers, for every
/// way an apply arrives: destage on this node, an apply frame on the data channel, or a call to the replica grain.
/// </summary>
public sealed partial class ExtentApplier(ExtentStoreRegistry stores, Rereplication.NodeFence fence, ILogger<ExtentApplier> logger)
{
    /// <summary>
    /// Applies <paramref name="writes"/> by LSN (higher wins, equal is a duplicate); Ok once durable on this replica.
    /// Writes that contradict the replica are refused whole (Invalid); a fenced node or a failed store answers Faulted.
    /// </summary>
    /// <remarks>The payloads are the caller's and are not retained after the task completes.</remarks>
    public async Task<ExtentApplyReply> ApplyAsync(Guid volumeId, int group, int blockSizeBytes, IReadOnlyList<ExtentWrite> writes)
    {
        if (fence.IsRemoved)
        {
            return new ExtentApplyReply(ExtentStatus.Faulted, 0, 0, Rereplication.NodeFence.RemovedMessage);
        }

        try
        {
            using var lease = stores.Acquire(volumeId, group, blockSizeBytes);
            var result = await lease.Store.ApplyAsync(writes).ConfigureAwait(false);
            return new ExtentApplyReply(ExtentStatus.Ok, result.BlocksApplied, result.BlocksSkipped, "");
        }
        catch (Exception e) when (e is StorageFaultException or ExtentCorruptException or ObjectDisposedException or IOException or UnauthorizedAccessException)
        {
            // First: a disposed store is an InvalidOperationException too, and it is a fault, not a bad request.
            LogFault(volumeId, group, e.Message);
            return new ExtentApplyReply(ExtentStatus.Faulted, 0, 0, e.Message);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return new ExtentApplyReply(ExtentStatus.Invalid, 0, 0, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Extent replica of volume {VolumeId} group {Group} failed an apply: {Reason}")]
    private partial void LogFault(Guid volumeId, int group, string reason);
}
