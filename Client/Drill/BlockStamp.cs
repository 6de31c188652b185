using System.Buffers.Binary;
using Converge.Log;

namespace Converge.Client.Drill;

/// <summary>What a block read back turned out to be.</summary>
public enum StampState
{
    /// <summary>All zeros: never written (or lost).</summary>
    Zero,

    /// <summary>A whole, intact stamp of this volume and offset; its version is reported.</summary>
    Valid,

    /// <summary>The checksum does not match: torn or corrupted.</summary>
    Corrupt,

    /// <summary>An intact stamp of another volume or another offset: misdirected.</summary>
    Misplaced,
}

/// <summary>
/// The drill's 4 KiB block contents. Layout (little endian):
/// <code>
///   0  magic "CVGDRL01"   8  volume id (16 bytes)   24  block offset in bytes   32  version
///  40  filler derived from the header ...          4092  CRC-32C of bytes 0..4091
/// </code>
/// A block read back therefore names the write it came from, and a torn, stale or misdirected block is told apart.
/// </summary>
public static class BlockStamp
{
    public const int BlockBytes = 4096;
    private const ulong Magic = 0x31304C5244475643; // "CVGDRL01"
    private const int VolumeIdOffset = 8;
    private const int BlockOffsetOffset = 24;
    private const int VersionOffset = 32;
    private const int FillerOffset = 40;
    private const int CrcOffset = BlockBytes - 4;

    /// <summary>Writes the stamp of (<paramref name="volumeId"/>, <paramref name="offsetBytes"/>, <paramref name="version"/>) into <paramref name="block"/>.</summary>
    public static void Fill(Span<byte> block, Guid volumeId, long offsetBytes, long version)
    {
        if (block.Length != BlockBytes)
        {
            throw new ArgumentException($"a stamp fills exactly {BlockBytes} bytes, not {block.Length}", nameof(block));
        }

        BinaryPrimitives.WriteUInt64LittleEndian(block, Magic);
        volumeId.TryWriteBytes(block[VolumeIdOffset..]);
        BinaryPrimitives.WriteInt64LittleEndian(block[BlockOffsetOffset..], offsetBytes);
        BinaryPrimitives.WriteInt64LittleEndian(block[VersionOffset..], version);
        var state = ((ulong)offsetBytes * 0x9E3779B97F4A7C15UL) ^ (ulong)version ^ (ulong)volumeId.GetHashCode() ^ 0xD1B54A32D192ED03UL;
        for (var i = FillerOffset; i < CrcOffset; i += 4)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            BinaryPrimitives.WriteUInt32LittleEndian(block[i..], (uint)state);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(block[CrcOffset..], Crc32C.Compute(block[..CrcOffset]));
    }

    /// <summary>Classifies a block read at <paramref name="offsetBytes"/> of <paramref name="volumeId"/>; the version is set when valid.</summary>
    public static StampState Inspect(ReadOnlySpan<byte> block, Guid volumeId, long offsetBytes, out long version)
    {
        version = 0;
        if (block.Length != BlockBytes)
        {
            return StampState.Corrupt;
        }

        if (block.IndexOfAnyExcept((byte)0) < 0)
        {
            return StampState.Zero;
        }

        if (BinaryPrimitives.ReadUInt64LittleEndian(block) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(block[CrcOffset..]) != Crc32C.Compute(block[..CrcOffset]))
        {
            return StampState.Corrupt;
        }

        if (new Guid(block.Slice(VolumeIdOffset, 16)) != volumeId || BinaryPrimitives.ReadInt64LittleEndian(block[BlockOffsetOffset..]) != offsetBytes)
        {
            return StampState.Misplaced;
        }

        version = BinaryPrimitives.ReadInt64LittleEndian(block[VersionOffset..]);
        return StampState.Valid;
    }
}
