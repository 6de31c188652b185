using Converge.Grains.Extents;
using Converge.Grains.Io;
using Converge.Storage;

namespace Converge.Tests.Extents;

/// <summary>A scratch data directory under /tmp, removed on dispose.</summary>
internal sealed class TempDataDirectory : IDisposable
{
    public TempDataDirectory() => System.IO.Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "converge-extents-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (System.IO.Directory.Exists(Path))
        {
            System.IO.Directory.Delete(Path, recursive: true);
        }
    }
}

/// <summary>
/// Real files underneath, with fault points: counts reads of extent data files, flips a bit in what a read returns,
/// and fails fdatasync on demand (after which the file stays poisoned, as the kernel's would).
/// </summary>
internal sealed class FaultyTestFileSystem(IStorageFileSystem inner) : IStorageFileSystem
{
    private int _dataReads;

    public int DataReads => Volatile.Read(ref _dataReads);

    public volatile bool FailFlush;

    public volatile bool FlipBitOnDataRead;

    public IStorageFile Open(string path, bool create) => new FaultyFile(this, inner.Open(path, create));

    public bool Exists(string path) => inner.Exists(path);

    public void Delete(string path) => inner.Delete(path);

    public void Rename(string fromPath, string toPath) => inner.Rename(fromPath, toPath);

    public void SyncDirectory(string directoryPath) => inner.SyncDirectory(directoryPath);

    public IReadOnlyList<string> List(string directoryPath, string searchPattern) => inner.List(directoryPath, searchPattern);

    private sealed class FaultyFile(FaultyTestFileSystem owner, IStorageFile inner) : IStorageFile
    {
        private bool _poisoned;

        public string Path => inner.Path;

        public long LengthBytes => inner.LengthBytes;

        public void Write(long offsetBytes, ReadOnlySpan<byte> data) => inner.Write(offsetBytes, data);

        public int Read(long offsetBytes, Span<byte> buffer)
        {
            var read = inner.Read(offsetBytes, buffer);
            if (Path.EndsWith(".data", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref owner._dataReads);
                if (owner.FlipBitOnDataRead && read > 0)
                {
                    buffer[read / 2] ^= 0x10;
                }
            }

            return read;
        }

        public void FlushData()
        {
            if (_poisoned || owner.FailFlush)
            {
                _poisoned = true;
                throw new StorageFaultException($"injected fdatasync failure on {Path}", 5);
            }

            inner.FlushData();
        }

        public void SetLength(long lengthBytes) => inner.SetLength(lengthBytes);

        public void Dispose() => inner.Dispose();
    }
}

internal static class ExtentTestData
{
    public const int BlockSizeBytes = 4096;

    public static ExtentStoreOptions SmallOptions(int maxCachedExtents = 16) =>
        new() { BlockSizeBytes = BlockSizeBytes, ExtentSizeBytes = 64 * BlockSizeBytes, GroupCount = 4, MaxCachedExtents = maxCachedExtents };

    /// <summary>A block whose every byte derives from (block, LSN), so a read proves which version it got.</summary>
    public static byte[] BlockFor(long blockIndex, Lsn lsn, int blocks = 1)
    {
        var data = new byte[blocks * BlockSizeBytes];
        for (var b = 0; b < blocks; b++)
        {
            var seed = (int)((blockIndex + b) * 7919 + (long)lsn.Epoch * 104729 + (long)lsn.Sequence * 31);
            new Random(seed).NextBytes(data.AsSpan(b * BlockSizeBytes, BlockSizeBytes));
        }

        return data;
    }

    public static ExtentWrite Data(Guid volumeId, long blockIndex, Lsn lsn, int blocks = 1) =>
        ExtentWrite.Data(volumeId, blockIndex, lsn, BlockFor(blockIndex, lsn, blocks), BlockSizeBytes);

    public static (byte[] Bytes, BlockReadResult[] Results, ReadSummary Summary) Read(PlacementGroupStore store, long blockIndex, int count)
    {
        var bytes = new byte[count * store.BlockSizeBytes];
        var results = new BlockReadResult[count];
        var summary = store.ReadBlocks(blockIndex, count, bytes, results);
        return (bytes, results, summary);
    }
}
