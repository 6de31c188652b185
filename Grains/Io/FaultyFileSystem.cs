using System.IO.Enumeration;

namespace Converge.Grains.Io;

/// <summary>The operations a fault can be armed on.</summary>
public enum FaultPoint
{
    Write,
    FlushData,
    SyncDirectory,
    Rename,
}

/// <summary>
/// Named fault points over another <see cref="IStorageFileSystem"/>: tests arm faults per path pattern (a file-name glob
/// matched against the full path, e.g. <c>*.log</c>) to make writes fail or tear, fdatasync fail, operations slow, or
/// flushes block until released. Thread-safe. Each arm returns a handle whose disposal disarms it.
/// </summary>
public sealed partial class FaultyFileSystem(IStorageFileSystem inner) : IStorageFileSystem
{
    public const int Eio = 5;
    public const int Enospc = 28;

    private readonly Lock _lock = new();
    private readonly List<Fault> _faults = [];
    private long _flushCount;
    private long _writeCount;

    /// <summary>Successful fdatasync calls that reached the inner file system.</summary>
    public long FlushCount => Interlocked.Read(ref _flushCount);

    /// <summary>Write calls that reached the inner file system (whole or torn).</summary>
    public long WriteCount => Interlocked.Read(ref _writeCount);

    /// <summary>Writes to matching paths throw <see cref="StorageFaultException"/> with <paramref name="errno"/> (EIO or ENOSPC) and write nothing.</summary>
    public IDisposable FailWrites(string pathPattern, int errno = Eio, int times = int.MaxValue) =>
        Arm(new Fault(FaultPoint.Write, pathPattern, times) { Errno = errno });

    /// <summary>fdatasync of matching paths throws with <paramref name="errno"/>; the file is poisoned as a real failed fsync would leave it.</summary>
    public IDisposable FailFlushes(string pathPattern, int errno = Eio, int times = int.MaxValue) =>
        Arm(new Fault(FaultPoint.FlushData, pathPattern, times) { Errno = errno });

    /// <summary>
    /// The next matching writes persist only their first <paramref name="keepBytes"/> bytes; then they throw EIO, or when
    /// <paramref name="silently"/> report success (a lying device, or a crash mid-write as the next open sees it).
    /// </summary>
    public IDisposable TearWrites(string pathPattern, int keepBytes, bool silently, int times = 1) =>
        Arm(new Fault(FaultPoint.Write, pathPattern, times) { TearKeepBytes = keepBytes, TearSilently = silently });

    /// <summary>Matching operations at <paramref name="point"/> wait <paramref name="delay"/> first.</summary>
    public IDisposable Delay(FaultPoint point, string pathPattern, TimeSpan delay, int times = int.MaxValue) =>
        Arm(new Fault(point, pathPattern, times) { Delay = delay });

    /// <summary>
    /// Matching operations at <paramref name="point"/> (by default fdatasync) block until the returned hold is released or
    /// disposed; a hold not released within <paramref name="maxHold"/> (default 30 s) fails the held operation with EIO.
    /// </summary>
    public FaultHold Hold(string pathPattern, FaultPoint point = FaultPoint.FlushData, TimeSpan? maxHold = null)
    {
        var hold = new FaultHold(maxHold ?? TimeSpan.FromSeconds(30));
        hold.Fault = Arm(new Fault(point, pathPattern, int.MaxValue) { Hold = hold });
        return hold;
    }

    public IStorageFile Open(string path, bool create) => new FaultyFile(this, inner.Open(path, create));

    public bool Exists(string path) => inner.Exists(path);

    public void Delete(string path) => inner.Delete(path);

    public void Rename(string fromPath, string toPath)
    {
        Before(FaultPoint.Rename, toPath);
        inner.Rename(fromPath, toPath);
    }

    public void SyncDirectory(string directoryPath)
    {
        Before(FaultPoint.SyncDirectory, directoryPath);
        inner.SyncDirectory(directoryPath);
    }

    public IReadOnlyList<string> List(string directoryPath, string searchPattern) => inner.List(directoryPath, searchPattern);

    internal void Disarm(Fault fault)
    {
        lock (_lock)
        {
            _faults.Remove(fault);
        }
    }

    private Fault Arm(Fault fault)
    {
        ArgumentException.ThrowIfNullOrEmpty(fault.PathPattern);
        lock (_lock)
        {
            _faults.Add(fault);
        }

        fault.Owner = this;
        return fault;
    }

    /// <summary>Finds and consumes the first armed fault for this operation, or null.</summary>
    private Fault? Take(FaultPoint point, string path)
    {
        lock (_lock)
        {
            foreach (var fault in _faults)
            {
                if (fault.Point == point && fault.Remaining > 0 && FileSystemName.MatchesSimpleExpression(fault.PathPattern, path, ignoreCase: false))
                {
                    fault.Remaining--;
                    return fault;
                }
            }
        }

        return null;
    }

    /// <summary>Applies delay, hold and failure faults that act before an operation; returns a tear fault for writes.</summary>
    private Fault? Before(FaultPoint point, string path)
    {
        var fault = Take(point, path);
        if (fault is null)
        {
            return null;
        }

        if (fault.Delay > TimeSpan.Zero)
        {
            Thread.Sleep(fault.Delay);
        }

        fault.Hold?.Block(path);
        if (fault.Errno != 0)
        {
            throw new StorageFaultException($"injected {point} failure on {path}: errno {fault.Errno}", fault.Errno);
        }

        return fault.TearKeepBytes >= 0 ? fault : null;
    }

    internal sealed class Fault(FaultPoint point, string pathPattern, int times) : IDisposable
    {
        public FaultPoint Point { get; } = point;

        public string PathPattern { get; } = pathPattern;

        public int Remaining { get; set; } = times;

        public int Errno { get; init; }

        public int TearKeepBytes { get; init; } = -1;

        public bool TearSilently { get; init; }

        public TimeSpan Delay { get; init; }

        public FaultHold? Hold { get; init; }

        public FaultyFileSystem? Owner { get; set; }

        public void Dispose() => Owner?.Disarm(this);
    }
}

/// <summary>
/// A hold armed by <see cref="FaultyFileSystem.Hold"/>: operations that hit it block until <see cref="Release"/>.
/// <see cref="Reached"/> completes when the first operation is blocked, so a test can wait for it without sleeping.
/// </summary>
public sealed class FaultHold : IDisposable
{
    private readonly TimeSpan _maxHold;
    private readonly ManualResetEventSlim _released = new(false);
    private readonly TaskCompletionSource<string> _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal FaultHold(TimeSpan maxHold)
    {
        _maxHold = maxHold;
    }

    /// <summary>Completes with the path of the first operation that blocked on this hold.</summary>
    public Task<string> Reached => _reached.Task;

    /// <summary>Lets blocked and later operations through; the hold stays armed only until released.</summary>
    public void Release() => _released.Set();

    /// <summary>Releases and disarms the hold.</summary>
    public void Dispose()
    {
        Release();
        Fault?.Dispose();
    }

    internal IDisposable? Fault { get; set; }

    internal void Block(string path)
    {
        _reached.TrySetResult(path);
        if (!_released.Wait(_maxHold))
        {
            throw new StorageFaultException($"held operation on {path} was not released within {_maxHold}", FaultyFileSystem.Eio);
        }
    }
}
