using System.Buffers;
using Converge.Grains.Io;
using Converge.Grains.Placement;
using Converge.Storage;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;

namespace Converge.Grains.Extents;

/// <summary>
/// One replica of one placement group, pinned to its storage node. Holds no state: the store lives in the node's
/// <see cref="ExtentStoreRegistry"/>, which serializes applies and lets reads run beside them, so the grain is reentrant.
/// </summary>
[NodePinnedPlacement, Reentrant]
public sealed partial class ExtentReplicaGrain(ExtentStoreRegistry stores, ExtentApplier applier, Rereplication.NodeFence fence, ILogger<ExtentReplicaGrain> logger)
    : Grain, IExtentReplicaGrain
{
    /// <summary>The most blocks one read returns (one extent at the default 4 MiB / 4 KiB).</summary>
    private const int MaxReadBlocks = 1024;

    private Guid _volumeId;
    private int _group;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // Key: storage-N/<volumeId:N>/<group>.
        var parts = this.GetPrimaryKeyString().Split('/');
        if (parts.Length != 3 || !Guid.TryParseExact(parts[1], "N", out _volumeId) || !int.TryParse(parts[2], out _group) || _group < 0)
        {
            throw new ArgumentException($"'{this.GetPrimaryKeyString()}' is not an extent replica key (storage-N/<volumeId:N>/<group>)");
        }

        return Task.CompletedTask;
    }

    public Task<ExtentApplyReply> ApplyDurableAsync(int blockSizeBytes, ExtentWrite[] writes) =>
        applier.ApplyAsync(_volumeId, _group, blockSizeBytes, writes);

    public Task<ExtentReadReply> ReadBlocksAsync(int blockSizeBytes, long blockIndex, int count)
    {
        if (count is < 1 or > MaxReadBlocks)
        {
            return Task.FromResult(new ExtentReadReply(ExtentStatus.Invalid, null, [], $"a read covers 1..{MaxReadBlocks} blocks, not {count}"));
        }

        if (fence.IsRemoved)
        {
            return Task.FromResult(new ExtentReadReply(ExtentStatus.Faulted, null, [], Rereplication.NodeFence.RemovedMessage));
        }

        var results = ArrayPool<BlockReadResult>.Shared.Rent(count);
        try
        {
            using var lease = stores.Acquire(_volumeId, _group, blockSizeBytes);
            var data = new byte[(long)count * blockSizeBytes];
            lease.Store.ReadBlocks(blockIndex, count, data, results);
            var blocks = new ExtentBlock[count];
            for (var i = 0; i < count; i++)
            {
                blocks[i] = new ExtentBlock(results[i].Lsn.ToLogLsn(), (byte)results[i].State);
            }

            return Task.FromResult(new ExtentReadReply(ExtentStatus.Ok, data, blocks, ""));
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return Task.FromResult(new ExtentReadReply(ExtentStatus.Invalid, null, [], e.Message));
        }
        catch (Exception e) when (e is StorageFaultException or ExtentCorruptException or ObjectDisposedException or IOException)
        {
            LogFault(_volumeId, _group, e.Message);
            return Task.FromResult(new ExtentReadReply(ExtentStatus.Faulted, null, [], e.Message));
        }
        finally
        {
            ArrayPool<BlockReadResult>.Shared.Return(results);
        }
    }

    public Task<(long FirstBlockIndex, int BlockCount, byte State)[]> GetAllocationAsync(int blockSizeBytes, long blockIndex, int count)
    {
        if (fence.IsRemoved)
        {
            throw new InvalidOperationException(Rereplication.NodeFence.RemovedMessage);
        }

        using var lease = stores.Acquire(_volumeId, _group, blockSizeBytes);
        var runs = lease.Store.GetAllocation(blockIndex, count);
        var reply = new (long, int, byte)[runs.Count];
        for (var i = 0; i < runs.Count; i++)
        {
            reply[i] = (runs[i].FirstBlockIndex, runs[i].BlockCount, (byte)runs[i].State);
        }

        return Task.FromResult(reply);
    }

    public Task DeleteAsync()
    {
        var directory = PlacementGroupStore.GroupDirectory(stores.DataDirectory, _volumeId, _group);
        if (!Directory.Exists(directory))
        {
            return Task.CompletedTask;
        }

        // Block size does not matter for deletion; any valid one opens the directory.
        var lease = stores.Acquire(_volumeId, _group, stores.BlockSizeOf(_volumeId, _group) ?? ExtentStoreOptions.DefaultBlockSizeBytes);
        try
        {
            lease.Store.Delete(_volumeId);
        }
        finally
        {
            lease.Dispose();
            stores.Forget(_volumeId, _group);
        }

        LogDeleted(_volumeId, _group);
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Extent replica of volume {VolumeId} group {Group} failed: {Reason}")]
    private partial void LogFault(Guid volumeId, int group, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Extent replica of volume {VolumeId} group {Group} deleted")]
    private partial void LogDeleted(Guid volumeId, int group);
}
