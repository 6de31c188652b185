using System.Buffers.Binary;
using Converge.Log;

namespace Converge.Tests.WritePath;

/// <summary>
/// Recognizable 4 KiB block contents: magic, volume tag, block index, version, pseudo-random filler derived from those,
/// and a CRC-32C over the rest. A block read back names the write it came from, so a wrong, stale or torn block is
/// told apart from the right one.
/// </summary>
public static class BlockPattern
{
    public const int BlockBytes = 4096;
    private const ulong Magic = 0x31304B4C42475643; // "CVGBLK01"
    private const int FillerStart = 32;
    private const int CrcOffset = BlockBytes - 4;

    public static void Fill(Span<byte> block, ulong volumeTag, long blockIndex, long version)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(block, Magic);
        BinaryPrimitives.WriteUInt64LittleEndian(block[8..], volumeTag);
        BinaryPrimitives.WriteInt64LittleEndian(block[16..], blockIndex);
        BinaryPrimitives.WriteInt64LittleEndian(block[24..], version);
        var state = (volumeTag * 0x9E3779B97F4A7C15UL) ^ ((ulong)blockIndex << 20) ^ (ulong)version ^ 0xD1B54A32D192ED03UL;
        for (var i = FillerStart; i < CrcOffset; i += 4)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            BinaryPrimitives.WriteUInt32LittleEndian(block[i..], (uint)state);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(block[CrcOffset..], Crc32C.Compute(block[..CrcOffset]));
    }

    /// <summary>
    /// Checks one block read back: version 0 means never written (all zeros); otherwise the block must be exactly the
    /// pattern of a version in [<paramref name="minVersion"/>, <paramref name="maxVersion"/>]. Returns null when it is,
    /// else what is wrong.
    /// </summary>
    public static string? Check(ReadOnlySpan<byte> block, ulong volumeTag, long blockIndex, long minVersion, long maxVersion)
    {
        if (block.IndexOfAnyExcept((byte)0) < 0)
        {
            return minVersion == 0 ? null : $"block {blockIndex} reads as zeros; acknowledged version {minVersion}";
        }

        var version = BinaryPrimitives.ReadInt64LittleEndian(block[24..]);
        if (version < minVersion || version > maxVersion)
        {
            return $"block {blockIndex} holds version {version}; expected {minVersion}..{maxVersion} (tag {BinaryPrimitives.ReadUInt64LittleEndian(block[8..]):x}, index {BinaryPrimitives.ReadInt64LittleEndian(block[16..])})";
        }

        Span<byte> expected = stackalloc byte[BlockBytes];
        Fill(expected, volumeTag, blockIndex, version);
        if (!block.SequenceEqual(expected))
        {
            return $"block {blockIndex} version {version} differs from its pattern (corrupt or torn)";
        }

        return null;
    }
}
