using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Converge.Grains.Io;

/// <summary>
/// The real file system. Durability goes through libc <c>fdatasync</c>/<c>fsync</c> called directly and checked,
/// because on .NET 10 for Linux <c>FileStream.Flush(true)</c> and <c>RandomAccess.FlushToDisk</c> return normally
/// when fsync fails with EIO.
/// </summary>
public sealed partial class PosixFileSystem : IStorageFileSystem
{
    public static readonly PosixFileSystem Instance = new();

    public IStorageFile Open(string path, bool create)
    {
        var handle = File.OpenHandle(path, create ? FileMode.OpenOrCreate : FileMode.Open, FileAccess.ReadWrite, FileShare.Read, FileOptions.None);
        return new PosixFile(path, handle);
    }

    public bool Exists(string path) => File.Exists(path);

    public void Delete(string path) => File.Delete(path);

    public void Rename(string fromPath, string toPath) => File.Move(fromPath, toPath, overwrite: true);

    public void SyncDirectory(string directoryPath)
    {
        var fd = Native.Open(directoryPath, Native.ORdOnly | Native.ODirectory);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new StorageFaultException($"open({directoryPath}) for directory fsync failed: errno {errno}", errno);
        }

        try
        {
            if (Native.Fsync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new StorageFaultException($"fsync of directory {directoryPath} failed: errno {errno}", errno);
            }
        }
        finally
        {
            _ = Native.Close(fd);
        }
    }

    public IReadOnlyList<string> List(string directoryPath, string searchPattern)
    {
        if (!Directory.Exists(directoryPath))
        {
            return [];
        }

        var files = Directory.GetFiles(directoryPath, searchPattern);
        Array.Sort(files, StringComparer.Ordinal);
        return files;
    }

    private sealed class PosixFile(string path, SafeFileHandle handle) : IStorageFile
    {
        private int _poisoned;

        public string Path { get; } = path;

        public long LengthBytes => RandomAccess.GetLength(handle);

        public void Write(long offsetBytes, ReadOnlySpan<byte> data)
        {
            ThrowIfPoisoned();
            try
            {
                RandomAccess.Write(handle, data, offsetBytes);
            }
            catch (IOException e)
            {
                Poison();
                throw new StorageFaultException($"write of {data.Length} bytes at {offsetBytes} in {Path} failed: {e.Message}", e.HResult & 0xFFFF);
            }
        }

        public int Read(long offsetBytes, Span<byte> buffer)
        {
            try
            {
                return RandomAccess.Read(handle, buffer, offsetBytes);
            }
            catch (IOException e)
            {
                throw new StorageFaultException($"read of {buffer.Length} bytes at {offsetBytes} in {Path} failed: {e.Message}", e.HResult & 0xFFFF);
            }
        }

        public void FlushData()
        {
            ThrowIfPoisoned();
            if (Native.Fdatasync(handle) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                Poison();
                throw new StorageFaultException($"fdatasync of {Path} failed: errno {errno}", errno);
            }
        }

        public void SetLength(long lengthBytes)
        {
            ThrowIfPoisoned();
            RandomAccess.SetLength(handle, lengthBytes);
        }

        public void Dispose() => handle.Dispose();

        private void Poison() => Interlocked.Exchange(ref _poisoned, 1);

        private void ThrowIfPoisoned()
        {
            if (Volatile.Read(ref _poisoned) != 0)
            {
                throw new StorageFaultException($"{Path} is poisoned by an earlier I/O failure");
            }
        }
    }

    private static partial class Native
    {
        public const int ORdOnly = 0;
        public const int ODirectory = 0x10000;

        [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
        public static partial int Fdatasync(SafeFileHandle fd);

        [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
        public static partial int Fsync(int fd);

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        public static partial int Close(int fd);
    }
}
