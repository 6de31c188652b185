namespace Converge.Grains.Io;

/// <summary>
/// A file under a storage node's data directory, as the log and the extent store see it. Every durable
/// structure goes through this seam so tests can make it slow, failing, torn or lying
/// (<see cref="FaultyFileSystem"/>).
/// </summary>
/// <remarks>
/// Buffers passed in are the caller's; implementations must not retain them after the call completes.
/// A failed <see cref="FlushData"/> means the kernel may have dropped dirty pages: the file is poisoned and
/// callers must fail-stop, never retry (DESIGN invariant 5).
/// </remarks>
public interface IStorageFile : IDisposable
{
    string Path { get; }

    long LengthBytes { get; }

    /// <summary>Writes all of <paramref name="data"/> at <paramref name="offsetBytes"/> (pwrite). Not durable until <see cref="FlushData"/>.</summary>
    void Write(long offsetBytes, ReadOnlySpan<byte> data);

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offsetBytes"/> (pread); returns the count read (0 at end of file).</summary>
    int Read(long offsetBytes, Span<byte> buffer);

    /// <summary>fdatasync. Throws <see cref="StorageFaultException"/> when it fails; the file is unusable afterwards.</summary>
    void FlushData();

    /// <summary>Sets the file length (ftruncate); the caller flushes if it needs the new length durable.</summary>
    void SetLength(long lengthBytes);
}

/// <summary>The directory operations durable structures need, behind the same fault seam as <see cref="IStorageFile"/>.</summary>
public interface IStorageFileSystem
{
    /// <summary>Opens (creating when <paramref name="create"/>) a file for reading and writing.</summary>
    IStorageFile Open(string path, bool create);

    bool Exists(string path);

    /// <summary>Deletes a file; the caller calls <see cref="SyncDirectory"/> to make the deletion durable.</summary>
    void Delete(string path);

    /// <summary>Renames atomically; the caller syncs the directory afterwards.</summary>
    void Rename(string fromPath, string toPath);

    /// <summary>fsync of a directory, so a create, rename or delete in it survives a crash.</summary>
    void SyncDirectory(string directoryPath);

    /// <summary>Files in a directory matching a glob pattern, sorted by name.</summary>
    IReadOnlyList<string> List(string directoryPath, string searchPattern);
}

/// <summary>A storage I/O failure that poisons the file or structure it happened on (EIO, ENOSPC, a failed fsync).</summary>
public sealed class StorageFaultException(string message, int errno = 0) : IOException(message)
{
    /// <summary>The POSIX errno reported, 0 when unknown.</summary>
    public int Errno { get; } = errno;
}
