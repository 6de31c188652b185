using Converge.Storage;

namespace Converge.Grains.Extents;

/// <summary>
/// State of one block. <see cref="Unwritten"/>, <see cref="Data"/> and <see cref="Zero"/> are stored (2 bits each in
/// the allocation bitmap; the numbers are on disk, never change them); <see cref="Corrupt"/> is only ever a read result.
/// </summary>
public enum BlockState : byte
{
    Unwritten = 0,
    Data = 1,
    Zero = 2,

    /// <summary>The block's bytes or its metadata failed their checksum; the caller repairs it from the other replica.</summary>
    Corrupt = 3,
}

/// <summary>What <see cref="PlacementGroupStore.ReadBlocks"/> learned about one block.</summary>
public readonly record struct BlockReadResult(Lsn Lsn, BlockState State);

/// <summary>Totals of one read; <see cref="CorruptBlocks"/> &gt; 0 means some blocks must be repaired from the other replica.</summary>
public readonly record struct ReadSummary(int DataBlocks, int ThinBlocks, int CorruptBlocks);

/// <summary>Outcome of an apply: blocks whose LSN was higher than the stored one, and blocks skipped as older or duplicate.</summary>
public readonly record struct ApplyResult(int BlocksApplied, int BlocksSkipped);

/// <summary>A run of blocks with the same allocation, for NBD block status: only <see cref="BlockState.Data"/> is allocated.</summary>
public readonly record struct AllocationRun(long FirstBlockIndex, int BlockCount, BlockState State)
{
    public bool IsAllocated => State == BlockState.Data;
}

/// <summary>Outcome of a whole-extent transfer: blocks sent or applied, and blocks the source could not send (corrupt there).</summary>
public readonly record struct TransferResult(int BlocksApplied, int BlocksSkipped, int BlocksCorruptAtSource);

/// <summary>Sizes of one store; the block size is per volume and recorded in every metadata slot.</summary>
public sealed class ExtentStoreOptions
{
    public const int DefaultBlockSizeBytes = 4096;
    public const int DefaultExtentSizeBytes = 4 * 1024 * 1024;
    public const int MinBlockSizeBytes = 512;
    public const int MaxBlockSizeBytes = 64 * 1024;

    public int BlockSizeBytes { get; init; } = DefaultBlockSizeBytes;

    public int ExtentSizeBytes { get; init; } = DefaultExtentSizeBytes;

    /// <summary>Placement groups per volume; extent i belongs to group i % GroupCount.</summary>
    public int GroupCount { get; init; } = 64;

    /// <summary>Extents whose metadata and two file handles stay open; bounds memory (~21 bytes a block) and descriptors.</summary>
    public int MaxCachedExtents { get; init; } = 128;

    /// <summary>Largest number of records one apply accepts.</summary>
    public int MaxRecordsPerApply { get; init; } = 16384;

    /// <summary>An fdatasync slower than this is logged as a warning with its duration.</summary>
    public double SlowFsyncWarningMs { get; init; } = 200;

    public int BlocksPerExtent => ExtentSizeBytes / BlockSizeBytes;

    internal void Validate()
    {
        if (BlockSizeBytes < MinBlockSizeBytes || BlockSizeBytes > MaxBlockSizeBytes || !int.IsPow2(BlockSizeBytes))
        {
            throw new ArgumentOutOfRangeException(nameof(BlockSizeBytes), BlockSizeBytes, "block size must be a power of two from 512 to 65536 bytes");
        }

        if (ExtentSizeBytes < BlockSizeBytes || !int.IsPow2(ExtentSizeBytes) || ExtentSizeBytes > 64 * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(ExtentSizeBytes), ExtentSizeBytes, "extent size must be a power of two, at least one block and at most 64 MiB");
        }

        if (BlocksPerExtent > 65536)
        {
            throw new ArgumentOutOfRangeException(nameof(ExtentSizeBytes), ExtentSizeBytes, "an extent holds at most 65536 blocks");
        }

        if (GroupCount is < 1 or > 65536)
        {
            throw new ArgumentOutOfRangeException(nameof(GroupCount), GroupCount, "group count must be 1..65536");
        }

        if (MaxCachedExtents is < 2 or > 65536)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxCachedExtents), MaxCachedExtents, "cached extents must be 2..65536");
        }

        if (MaxRecordsPerApply is < 1 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRecordsPerApply), MaxRecordsPerApply, "records per apply must be 1..1000000");
        }
    }
}

/// <summary>An extent whose metadata has no valid slot: nothing about it can be trusted until it is imported from a replica.</summary>
public sealed class ExtentCorruptException(string message) : IOException(message);
