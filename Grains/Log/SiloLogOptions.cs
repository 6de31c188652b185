namespace Converge.Grains.Log;

public enum LogDurability
{
    /// <summary>A commit is an fdatasync (DESIGN invariant 1).</summary>
    Fsync = 0,

    /// <summary>
    /// A commit is a write to a file the caller placed on tmpfs (<c>/dev/shm</c>), with no fsync: survives a process kill,
    /// not the loss of the machine (DESIGN decision 12). Weaker than invariant 1.
    /// </summary>
    Memory = 1,
}

public sealed class SiloLogOptions
{
    public long ChunkSizeBytes { get; init; } = 64L * 1024 * 1024;

    public LogDurability Durability { get; init; } = LogDurability.Fsync;

    /// <summary>Undestaged bytes (frames) the log holds before appends wait.</summary>
    public long NvramBudgetBytes { get; init; } = 1L * 1024 * 1024 * 1024;

    /// <summary>How long an append waits for budget or a queue slot before it returns NvramFull or QueueFull.</summary>
    public TimeSpan AdmissionTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public int MaxPendingAppends { get; init; } = 4096;

    /// <summary>The writer takes at most this many bytes of frames into one batch (one write, one fdatasync).</summary>
    public int MaxBatchBytes { get; init; } = 4 * 1024 * 1024;

    public int MaxRecordBytes { get; init; } = (1024 * 1024) + Converge.Log.LogRecord.OverheadBytes;

    public long MaxSegmentBytes { get; init; } = 256L * 1024 * 1024;

    public TimeSpan SlowFlushThreshold { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Caps the bytes the writer puts into the log per second (a token bucket with a tenth of a second of burst);
    /// 0, the default, for no cap. For benchmarks of a storage-bound cluster on one machine, not for production.
    /// </summary>
    public long BandwidthBytesPerSecond { get; init; }

    internal void Validate()
    {
        if (ChunkSizeBytes < 64 * 1024 || ChunkSizeBytes % 4096 != 0 || ChunkSizeBytes > int.MaxValue)
        {
            throw new ArgumentException($"ChunkSizeBytes {ChunkSizeBytes} must be a multiple of 4096 between 64 KiB and 2 GiB");
        }

        if (MaxRecordBytes < Converge.Log.LogRecord.OverheadBytes + 1 || LogFrame.FrameLength(MaxRecordBytes) > ChunkSizeBytes)
        {
            throw new ArgumentException($"MaxRecordBytes {MaxRecordBytes} must fit a frame in a chunk of {ChunkSizeBytes} bytes");
        }

        if (NvramBudgetBytes < LogFrame.FrameLength(MaxRecordBytes) || MaxPendingAppends < 1 || MaxBatchBytes < 4096 || MaxSegmentBytes < 1)
        {
            throw new ArgumentException("NvramBudgetBytes must hold one largest frame; MaxPendingAppends, MaxBatchBytes and MaxSegmentBytes must be positive");
        }

        if (BandwidthBytesPerSecond < 0)
        {
            throw new ArgumentException($"BandwidthBytesPerSecond {BandwidthBytesPerSecond} must be 0 (no cap) or positive");
        }

        if (AdmissionTimeout < TimeSpan.Zero || AdmissionTimeout > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException($"AdmissionTimeout {AdmissionTimeout} must be between 0 and 1 minute");
        }
    }
}
