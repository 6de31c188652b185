namespace Converge.Grains.Io;

public sealed partial class FaultyFileSystem
{
    private sealed class FaultyFile(FaultyFileSystem owner, IStorageFile inner) : IStorageFile
    {
        private int _poisoned;

        public string Path => inner.Path;

        public long LengthBytes => inner.LengthBytes;

        public void Write(long offsetBytes, ReadOnlySpan<byte> data)
        {
            ThrowIfPoisoned();
            var tear = owner.Before(FaultPoint.Write, Path);
            Interlocked.Increment(ref owner._writeCount);
            if (tear is null)
            {
                inner.Write(offsetBytes, data);
                return;
            }

            var kept = Math.Min(tear.TearKeepBytes, data.Length);
            inner.Write(offsetBytes, data[..kept]);
            if (!tear.TearSilently)
            {
                Interlocked.Exchange(ref _poisoned, 1);
                throw new StorageFaultException($"injected torn write on {Path}: {kept} of {data.Length} bytes at {offsetBytes}", Eio);
            }
        }

        public int Read(long offsetBytes, Span<byte> buffer) => inner.Read(offsetBytes, buffer);

        public void FlushData()
        {
            ThrowIfPoisoned();
            try
            {
                owner.Before(FaultPoint.FlushData, Path);
            }
            catch (StorageFaultException)
            {
                // After a failed fsync the kernel may have dropped the dirty pages: the file is unusable, as on a real disk.
                Interlocked.Exchange(ref _poisoned, 1);
                throw;
            }

            inner.FlushData();
            Interlocked.Increment(ref owner._flushCount);
        }

        public void SetLength(long lengthBytes)
        {
            ThrowIfPoisoned();
            inner.SetLength(lengthBytes);
        }

        public void Dispose() => inner.Dispose();

        private void ThrowIfPoisoned()
        {
            if (Volatile.Read(ref _poisoned) != 0)
            {
                throw new StorageFaultException($"{Path} is poisoned by an earlier injected failure", Eio);
            }
        }
    }
}
