using Converge.Grains.Io;
using Converge.Storage;

namespace Converge.Grains.Extents;

/// <summary>
/// Replica-to-replica copy for re-replication: the target pulls an extent from the source a range at a time (each
/// range a self-contained export stream with per-record CRCs), verifies and applies it by LSN, durably. Memory in
/// flight is one range, never the whole extent; destage may apply to the target meanwhile (the higher LSN wins).
/// </summary>
public sealed partial class ExtentReplicaGrain
{
    /// <summary>Blocks per exported range: 1 MiB of 4 KiB blocks, a bounded message and buffer.</summary>
    public const int CopyRangeBlocks = 256;

    public Task<long[]> ListExtentsAsync(int blockSizeBytes)
    {
        if (fence.IsRemoved)
        {
            throw new InvalidOperationException(Rereplication.NodeFence.RemovedMessage);
        }

        var directory = PlacementGroupStore.GroupDirectory(stores.DataDirectory, _volumeId, _group);
        if (!Directory.Exists(directory))
        {
            return Task.FromResult(Array.Empty<long>());
        }

        using var lease = stores.Acquire(_volumeId, _group, blockSizeBytes);
        return Task.FromResult(lease.Store.ListExtents().ToArray());
    }

    public async Task<ExtentExportReply> ExportAsync(int blockSizeBytes, long extentIndex, int firstBlock, int blockCount)
    {
        if (fence.IsRemoved)
        {
            return new ExtentExportReply(ExtentStatus.Faulted, null, 0, Rereplication.NodeFence.RemovedMessage);
        }

        try
        {
            using var lease = stores.Acquire(_volumeId, _group, blockSizeBytes);
            var capacity = PlacementGroupStore.ExportHeaderSizeBytes + ((blockCount + 1) * (PlacementGroupStore.ExportRecordHeaderSizeBytes + blockSizeBytes));
            using var stream = new MemoryStream(Math.Min(capacity, 64 << 20));
            var result = await lease.Store.ExportExtentAsync(extentIndex, stream, firstBlock, blockCount);
            return new ExtentExportReply(ExtentStatus.Ok, stream.ToArray(), result.BlocksCorruptAtSource, "");
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return new ExtentExportReply(ExtentStatus.Invalid, null, 0, e.Message);
        }
        catch (Exception e) when (e is StorageFaultException or ExtentCorruptException or ObjectDisposedException or IOException)
        {
            LogFault(_volumeId, _group, e.Message);
            return new ExtentExportReply(ExtentStatus.Faulted, null, 0, e.Message);
        }
    }

    public async Task<ExtentCopyReply> CopyExtentFromAsync(int blockSizeBytes, string sourceNode, long extentIndex)
    {
        if (fence.IsRemoved)
        {
            return new ExtentCopyReply(ExtentStatus.Faulted, 0, 0, 0, 0, Rereplication.NodeFence.RemovedMessage);
        }

        var source = GrainFactory.GetGrain<IExtentReplicaGrain>(IExtentReplicaGrain.Key(sourceNode, _volumeId, _group));
        int applied = 0, skipped = 0, corrupt = 0;
        long bytes = 0;
        try
        {
            using var lease = stores.Acquire(_volumeId, _group, blockSizeBytes);
            var blocksPerExtent = lease.Store.BlocksPerExtent;
            for (var first = 0; first < blocksPerExtent; first += CopyRangeBlocks)
            {
                var count = Math.Min(CopyRangeBlocks, blocksPerExtent - first);
                var export = await source.ExportAsync(blockSizeBytes, extentIndex, first, count);
                if (export.Status != ExtentStatus.Ok || export.Stream is null)
                {
                    return new ExtentCopyReply(export.Status == ExtentStatus.Ok ? ExtentStatus.Faulted : export.Status, applied, skipped, corrupt, bytes,
                        $"{sourceNode} could not export extent {extentIndex} blocks {first}+{count}: {export.Message}");
                }

                using var stream = new MemoryStream(export.Stream, writable: false);
                var result = await lease.Store.ImportExtentAsync(stream);
                applied += result.BlocksApplied;
                skipped += result.BlocksSkipped;
                corrupt += export.CorruptBlocksOmitted;
                bytes += export.Stream.Length;
            }

            return new ExtentCopyReply(ExtentStatus.Ok, applied, skipped, corrupt, bytes, "");
        }
        catch (InvalidDataException e)
        {
            return new ExtentCopyReply(ExtentStatus.Faulted, applied, skipped, corrupt, bytes, $"copy of extent {extentIndex} from {sourceNode} rejected: {e.Message}");
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return new ExtentCopyReply(ExtentStatus.Invalid, applied, skipped, corrupt, bytes, e.Message);
        }
        catch (Exception e) when (e is StorageFaultException or ExtentCorruptException or ObjectDisposedException or IOException)
        {
            LogFault(_volumeId, _group, e.Message);
            return new ExtentCopyReply(ExtentStatus.Faulted, applied, skipped, corrupt, bytes, e.Message);
        }
    }
}
