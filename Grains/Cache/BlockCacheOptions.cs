using Converge.Grains.Io;

namespace Converge.Grains.Cache;

/// <summary>Sizes and placement of a compute node's <see cref="BlockCache"/>. Checked by <see cref="Validate"/>.</summary>
public sealed record BlockCacheOptions
{
    public const long DefaultRamCapacityBytes = 256L * 1024 * 1024;
    public const long DefaultFlashCapacityBytes = 1024L * 1024 * 1024;

    /// <summary>Upper bound of cached block bytes in RAM (bookkeeping adds roughly 150 bytes per block on top).</summary>
    public long RamCapacityBytes { get; init; } = DefaultRamCapacityBytes;

    /// <summary>Independently locked RAM partitions (a power of two); 0 picks one per 4 MiB of capacity, at most 16.</summary>
    public int RamShardCount { get; init; }

    /// <summary>Share of each RAM shard given to the small (probationary) FIFO of S3-FIFO.</summary>
    public double SmallQueueFraction { get; init; } = 0.1;

    /// <summary>Directory of the flash cache file (<c>flash.dat</c>); null disables the flash tier.</summary>
    public string? FlashDirectory { get; init; }

    /// <summary>Upper bound of the flash cache file; 0 disables the flash tier.</summary>
    public long FlashCapacityBytes { get; init; } = DefaultFlashCapacityBytes;

    /// <summary>Data bytes of one flash slot: only blocks of exactly this size are demoted (the volume default, 4 KiB).</summary>
    public int FlashBlockBytes { get; init; } = 4096;

    /// <summary>Evicted blocks waiting to be written to flash; an eviction that finds the queue full drops the block.</summary>
    public int DemotionQueueLength { get; init; } = 1024;

    public IStorageFileSystem FileSystem { get; init; } = PosixFileSystem.Instance;

    public bool FlashEnabled => FlashDirectory is not null && FlashCapacityBytes > 0;

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad setting; a valid configuration changes nothing.</summary>
    public void Validate()
    {
        if (RamCapacityBytes < 64 * 1024)
        {
            throw new ArgumentException($"RAM cache capacity must be at least 64 KiB, not {RamCapacityBytes} bytes", nameof(RamCapacityBytes));
        }

        if (RamShardCount < 0 || RamShardCount > 256 || (RamShardCount & (RamShardCount - 1)) != 0)
        {
            throw new ArgumentException($"RAM shard count must be 0 or a power of two up to 256, not {RamShardCount}", nameof(RamShardCount));
        }

        if (SmallQueueFraction is not (> 0 and < 1))
        {
            throw new ArgumentException($"small queue fraction must be between 0 and 1, not {SmallQueueFraction}", nameof(SmallQueueFraction));
        }

        if (FlashBlockBytes is < 512 or > 64 * 1024 || (FlashBlockBytes & (FlashBlockBytes - 1)) != 0)
        {
            throw new ArgumentException($"flash block size must be a power of two from 512 to 65536, not {FlashBlockBytes}", nameof(FlashBlockBytes));
        }

        if (FlashCapacityBytes < 0 || (FlashCapacityBytes > 0 && FlashCapacityBytes < 16L * (FlashBlockBytes + FlashSlot.HeaderBytes)))
        {
            throw new ArgumentException($"flash cache capacity must be 0 or hold at least 16 slots, not {FlashCapacityBytes} bytes", nameof(FlashCapacityBytes));
        }

        if (DemotionQueueLength is < 1 or > 1024 * 1024)
        {
            throw new ArgumentException($"demotion queue length must be from 1 to 1048576, not {DemotionQueueLength}", nameof(DemotionQueueLength));
        }
    }
}
