namespace Converge.Storage;

/// <summary>What a destaged record does to its blocks.</summary>
public enum ExtentWriteKind : byte
{
    /// <summary>Whole blocks of data.</summary>
    Data = 1,

    /// <summary>A tombstone (TRIM or WRITE_ZEROES): the blocks read as zeros and are not allocated.</summary>
    Zero = 2,
}

/// <summary>
/// One record to apply to the extent store: whole blocks starting at a volume block index, with the LSN the write
/// grain assigned. For <see cref="ExtentWriteKind.Data"/> the payload is <see cref="BlockCount"/> whole blocks;
/// for <see cref="ExtentWriteKind.Zero"/> it is empty. A record never crosses an extent boundary.
/// </summary>
/// <remarks>The payload is the caller's; the store does not retain it after the apply completes.</remarks>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentWrite")]
public readonly record struct ExtentWrite
{
    public ExtentWrite(Guid volumeId, long blockIndex, int blockCount, Lsn lsn, ExtentWriteKind kind, ReadOnlyMemory<byte> payload)
    {
        VolumeId = volumeId;
        BlockIndex = blockIndex;
        BlockCount = blockCount;
        Lsn = lsn;
        Kind = kind;
        Payload = payload;
    }

    /// <summary>A data record; the block count is the payload length over the block size, checked by the store.</summary>
    public static ExtentWrite Data(Guid volumeId, long blockIndex, Lsn lsn, ReadOnlyMemory<byte> payload, int blockSizeBytes) =>
        new(volumeId, blockIndex, blockSizeBytes > 0 ? payload.Length / blockSizeBytes : 0, lsn, ExtentWriteKind.Data, payload);

    public static ExtentWrite Zero(Guid volumeId, long blockIndex, int blockCount, Lsn lsn) =>
        new(volumeId, blockIndex, blockCount, lsn, ExtentWriteKind.Zero, ReadOnlyMemory<byte>.Empty);

    [Id(0)]
    public Guid VolumeId { get; }

    [Id(1)]
    public long BlockIndex { get; }

    [Id(2)]
    public int BlockCount { get; }

    [Id(3)]
    public Lsn Lsn { get; }

    [Id(4)]
    public ExtentWriteKind Kind { get; }

    [Id(5)]
    public ReadOnlyMemory<byte> Payload { get; }
}
