using Converge.Grains.Io;
using Converge.Grains.Log;
using Converge.Log;
using Xunit;

namespace Converge.Tests.Log;

/// <summary>A temporary data directory with a fault-injecting file system over the real one.</summary>
internal sealed class LogFixture : IDisposable
{
    public static readonly Guid Volume = new("11111111-2222-3333-4444-555555555555");
    public static readonly Guid Segment = new("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");

    public LogFixture()
    {
        DataDirectory = Path.Combine(Path.GetTempPath(), "converge-log-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(DataDirectory);
        FileSystem = new FaultyFileSystem(PosixFileSystem.Instance);
    }

    public string DataDirectory { get; }

    public string LogDirectory => Path.Combine(DataDirectory, "log");

    public FaultyFileSystem FileSystem { get; }

    public static SiloLogOptions SmallOptions(long chunkSizeBytes = 64 * 1024) => new()
    {
        ChunkSizeBytes = chunkSizeBytes,
        MaxRecordBytes = 16 * 1024,
        NvramBudgetBytes = 4L * 1024 * 1024,
        AdmissionTimeout = TimeSpan.FromSeconds(1),
    };

    public SiloLog Open(SiloLogOptions? options = null) => SiloLog.Open(DataDirectory, FileSystem, options ?? SmallOptions());

    public string ChunkPath(long number) => Path.Combine(LogDirectory, $"{number:D20}.log");

    public void Dispose()
    {
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A 4 KiB write record whose payload bytes all equal <paramref name="fill"/>.</summary>
    public static PooledLogRecord WriteRecord(ulong sequence, byte fill, Guid? segment = null, ulong epoch = 1, int payloadBytes = 4096, Guid? volume = null)
    {
        var payload = new byte[payloadBytes];
        payload.AsSpan().Fill(fill);
        var header = LogRecordHeader.ForWrite(volume ?? Volume, new Lsn(epoch, sequence), segment ?? Segment, sequence * 4096, payloadBytes);
        return LogRecord.EncodePooled(header, payload);
    }

    public static async Task<AppendResult> AppendWrite(SiloLog log, ulong sequence, byte fill, Guid? segment = null, ulong epoch = 1, int payloadBytes = 4096, Guid? volume = null)
    {
        using var record = WriteRecord(sequence, fill, segment, epoch, payloadBytes, volume);
        return await log.AppendCommittedAsync(record.Memory);
    }

    /// <summary>Reads a record back and returns its payload's first byte, checking the whole payload has that value.</summary>
    public static byte ReadFill(SiloLog log, LogAddress address)
    {
        var buffer = new byte[64 * 1024];
        var length = log.ReadRecord(address, buffer);
        Assert.Equal(LogRecordDecodeStatus.Ok, LogRecord.TryDecode(buffer.AsSpan(0, length), out var header));
        var payload = LogRecord.Payload(buffer.AsSpan(0, length), header);
        var fill = payload[0];
        Assert.False(payload.ContainsAnyExcept(fill), "payload must be uniform");
        return fill;
    }

    public static async Task<T> Within<T>(Task<T> task, string what, int timeoutMs = 10_000)
    {
        try
        {
            return await task.WaitAsync(TimeSpan.FromMilliseconds(timeoutMs));
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"timed out after {timeoutMs} ms waiting for {what}");
        }
    }
}
