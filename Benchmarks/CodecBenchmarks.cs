using BenchmarkDotNet.Attributes;
using Converge.Log;

namespace Converge.Benchmarks;

/// <summary>The per-I/O CPU cost of the record codec and its CRC-32C on a 4 KiB block.</summary>
[MemoryDiagnoser]
public class CodecBenchmarks
{
    private readonly byte[] _payload = new byte[4096];
    private readonly byte[] _encoded = new byte[LogRecord.EncodedLength(4096)];
    private LogRecordHeader _header;

    [GlobalSetup]
    public void Setup()
    {
        new Random(42).NextBytes(_payload);
        _header = LogRecordHeader.ForWrite(Guid.NewGuid(), new Lsn(1, 1), Guid.NewGuid(), 0, _payload.Length);
        LogRecord.Encode(_header, _payload, _encoded);
    }

    [Benchmark]
    public uint Crc32C4KiB() => Crc32C.Compute(_payload);

    [Benchmark]
    public uint Crc32C4KiBOneLane() => Crc32C.ComputeOneLane(_payload);

    [Benchmark]
    public uint Crc32C4KiBTable() => Crc32C.ComputeSoftware(_payload);

    [Benchmark]
    public int Encode4KiB() => LogRecord.Encode(_header, _payload, _encoded);

    [Benchmark]
    public LogRecordDecodeStatus Decode4KiB() => LogRecord.TryDecode(_encoded, out _);

    [Benchmark]
    public int EncodePooled4KiB()
    {
        using var record = LogRecord.EncodePooled(_header, _payload);
        return record.LengthBytes;
    }
}
