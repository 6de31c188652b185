using System.Buffers.Binary;
using Converge.Grains.Cache;
using Converge.Log;

namespace Converge.Tests.Cache;

internal static class CacheTestData
{
    public const int BlockBytes = 4096;

    public static readonly Guid VolumeA = Guid.Parse("6f0c1a2b-3d4e-4f50-8a61-7b8c9d0e1f21");
    public static readonly Guid VolumeB = Guid.Parse("9a8b7c6d-5e4f-4a3b-8c2d-1e0f2a3b4c52");

    /// <summary>A block whose every byte depends on (volume, block, LSN), so a torn or stale copy is recognisable.</summary>
    public static byte[] BlockFor(Guid volume, long block, Lsn lsn, int lengthBytes = BlockBytes)
    {
        var data = new byte[lengthBytes];
        Fill(volume, block, lsn, data);
        return data;
    }

    public static void Fill(Guid volume, long block, Lsn lsn, Span<byte> data)
    {
        var seed = (ulong)volume.GetHashCode() ^ ((ulong)block * 0x9E3779B97F4A7C15UL) ^ (lsn.Sequence * 0xC2B2AE3D27D4EB4FUL) ^ lsn.Epoch;
        for (var i = 0; i + 8 <= data.Length; i += 8)
        {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            BinaryPrimitives.WriteUInt64LittleEndian(data[i..], seed);
        }
    }

    public static bool Matches(Guid volume, long block, Lsn lsn, ReadOnlySpan<byte> data)
    {
        Span<byte> expected = stackalloc byte[data.Length];
        Fill(volume, block, lsn, expected);
        return expected.SequenceEqual(data);
    }

    public static BlockCache RamOnly(long ramBytes = 1024 * 1024, int shards = 1) =>
        new(new BlockCacheOptions { RamCapacityBytes = ramBytes, RamShardCount = shards });

    /// <summary>A 16-block RAM tier over a small flash file: the 17th distinct block put starts demotions.</summary>
    public static BlockCache WithFlash(string directory, long flashBytes = 1024 * 1024, int demotionQueueLength = 1024, Grains.Io.IStorageFileSystem? fileSystem = null) =>
        new(new BlockCacheOptions
        {
            RamCapacityBytes = 16 * BlockBytes,
            RamShardCount = 1,
            FlashDirectory = directory,
            FlashCapacityBytes = flashBytes,
            DemotionQueueLength = demotionQueueLength,
            FileSystem = fileSystem ?? Grains.Io.PosixFileSystem.Instance,
        });

    public static void PutBlocks(BlockCache cache, Guid volume, long first, long count, Lsn lsn)
    {
        for (var b = first; b < first + count; b++)
        {
            cache.Put(volume, b, lsn, BlockFor(volume, b, lsn));
        }
    }

    public static CancellationToken Timeout(int seconds = 10) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}
