using BenchmarkDotNet.Attributes;
using Converge.Grains.Cache;
using Converge.Log;

namespace Converge.Benchmarks;

/// <summary>
/// The compute node cache's hit path: a 4 KiB block found in RAM and copied into the caller's buffer. Expected: no
/// allocation, and a cost close to one dictionary lookup plus a 4 KiB copy.
/// </summary>
[MemoryDiagnoser]
public class CacheBenchmarks
{
    private const int Blocks = 16 * 1024;
    private static readonly Lsn Lsn = new(1, 1);
    private readonly Guid _volume = Guid.NewGuid();
    private readonly byte[] _block = new byte[4096];
    private readonly byte[] _destination = new byte[4096];
    private BlockCache _cache = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _cache = new BlockCache(new BlockCacheOptions { RamCapacityBytes = 256L * 1024 * 1024 });
        new Random(42).NextBytes(_block);
        for (var b = 0; b < Blocks; b++)
        {
            _cache.Put(_volume, b, Lsn, _block);
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _cache.Dispose();

    [Benchmark]
    public bool RamHitExpectedLsn() => _cache.TryRead(_volume, _next++ & (Blocks - 1), Lsn, _destination);

    [Benchmark]
    public bool RamHitAnyLsn() => _cache.TryRead(_volume, _next++ & (Blocks - 1), _destination, out _);

    [Benchmark]
    public bool Miss() => _cache.TryRead(_volume, Blocks + (_next++ & (Blocks - 1)), Lsn, _destination);

    [Benchmark]
    public void PutNewerInPlace() => _cache.Put(_volume, _next & (Blocks - 1), new Lsn(2, (ulong)_next++), _block);
}
