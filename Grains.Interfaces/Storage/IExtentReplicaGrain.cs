namespace Converge.Storage;

/// <summary>Expected outcomes of a replica call; a lost node surfaces as an exception.</summary>
[GenerateSerializer, Alias("Converge.Storage.ExtentStatus")]
public enum ExtentStatus
{
    Ok = 0,

    /// <summary>The request contradicts the replica (other block size, range across an extent, wrong group).</summary>
    Invalid = 1,

    /// <summary>The replica's store is fail-stopped after a storage fault, or an extent has no valid metadata.</summary>
    Faulted = 2,
}

/// <summary>One block as a replica holds it: its LSN and state (0 unwritten, 1 data, 2 zero, 3 corrupt).</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentBlock")]
public readonly record struct ExtentBlock(
    [property: Id(0)] Converge.Log.Lsn Lsn,
    [property: Id(1)] byte State)
{
    public const byte Unwritten = 0;
    public const byte Data = 1;
    public const byte Zero = 2;
    public const byte Corrupt = 3;
}

/// <summary>Blocks read from a replica: the bytes (zeros for unwritten, zero and corrupt blocks) and each block's LSN and state.</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentReadReply")]
public sealed record ExtentReadReply(
    [property: Id(0)] ExtentStatus Status,
    [property: Id(1)] byte[]? Data,
    [property: Id(2)] ExtentBlock[] Blocks,
    [property: Id(3)] string Message);

/// <summary>Outcome of an apply: "Ok" means durable (data, then metadata, fdatasync'd) on this replica.</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentApplyReply")]
public sealed record ExtentApplyReply(
    [property: Id(0)] ExtentStatus Status,
    [property: Id(1)] int BlocksApplied,
    [property: Id(2)] int BlocksSkipped,
    [property: Id(3)] string Message);

/// <summary>A piece of the export stream (docs/extent-format.md) covering a block range of one extent.</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentExportReply")]
public sealed record ExtentExportReply(
    [property: Id(0)] ExtentStatus Status,
    [property: Id(1)] byte[]? Stream,
    [property: Id(2)] int CorruptBlocksOmitted,
    [property: Id(3)] string Message);

/// <summary>Outcome of copying one extent into this replica: durable when Ok.</summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentCopyReply")]
public sealed record ExtentCopyReply(
    [property: Id(0)] ExtentStatus Status,
    [property: Id(1)] int BlocksApplied,
    [property: Id(2)] int BlocksSkipped,
    [property: Id(3)] int CorruptBlocksOmitted,
    [property: Id(4)] long BytesTransferred,
    [property: Id(5)] string Message);

/// <summary>
/// One replica of one placement group of one volume, keyed <c>storage-N/&lt;volumeId:N&gt;/&lt;group&gt;</c> and pinned
/// to that node. The block size travels with every call so the store can be opened lazily without a lookup.
/// </summary>
[Alias("Converge.Storage.IExtentReplicaGrain")]
public interface IExtentReplicaGrain : IGrainWithStringKey
{
    /// <summary>Applies records by LSN (higher wins, equal is a duplicate); completes once durable on this replica.</summary>
    [Alias("Apply"), ResponseTimeout("00:00:30")]
    Task<ExtentApplyReply> ApplyDurableAsync(int blockSizeBytes, [Immutable] ExtentWrite[] writes);

    /// <summary>Reads blocks of one extent, checksums verified; unwritten and zero blocks cost no data I/O.</summary>
    [Alias("Read"), ResponseTimeout("00:00:03")]
    Task<ExtentReadReply> ReadBlocksAsync(int blockSizeBytes, long blockIndex, int count);

    /// <summary>Allocated (data) blocks in a range of one extent, from metadata only: runs of (first block, count, state).</summary>
    [Alias("Allocation"), ResponseTimeout("00:00:05")]
    Task<(long FirstBlockIndex, int BlockCount, byte State)[]> GetAllocationAsync(int blockSizeBytes, long blockIndex, int count);

    /// <summary>The extents this replica has files for (ascending).</summary>
    [Alias("ListExtents"), ResponseTimeout("00:00:30")]
    Task<long[]> ListExtentsAsync(int blockSizeBytes);

    /// <summary>Exports blocks [firstBlock, firstBlock + blockCount) of one extent (block numbers within the extent), checksummed.</summary>
    [Alias("Export"), ResponseTimeout("00:00:30")]
    Task<ExtentExportReply> ExportAsync(int blockSizeBytes, long extentIndex, int firstBlock, int blockCount);

    /// <summary>
    /// Copies one extent from the same group's replica on <paramref name="sourceNode"/> into this one, a range at a
    /// time (bounded memory), every record checked against its CRC and applied by LSN; Ok once durable here.
    /// </summary>
    [Alias("CopyFrom"), ResponseTimeout("00:02:00")]
    Task<ExtentCopyReply> CopyExtentFromAsync(int blockSizeBytes, string sourceNode, long extentIndex);

    /// <summary>Deletes this replica's files (the volume is gone).</summary>
    [Alias("Delete"), ResponseTimeout("00:00:30")]
    Task DeleteAsync();

    public static string Key(string node, Guid volumeId, int group) =>
        node + "/" + volumeId.ToString("N") + "/" + group.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
