namespace Converge.Grains.Io;

/// <summary>
/// Arms faults on a storage node's file system from outside the process, for fault drills on real silo processes.
/// Enabled only when the environment variable <see cref="EnvironmentVariable"/> names a control directory; otherwise
/// nothing is wrapped and nothing runs. The protocol (docs/faults.md), for a node named <c>storage-2</c>:
/// <list type="bullet">
/// <item><c>storage-2.hold-flush</c> appears: the node's log fdatasync calls block (a <see cref="FaultHold"/>).</item>
/// <item><c>storage-2.held</c> is created by the node once a flush is blocked on the hold.</item>
/// <item><c>storage-2.hold-flush</c> is removed: the hold is released and disarmed; <c>storage-2.held</c> is deleted.</item>
/// <item><c>storage-2.fail-flush</c> appears: every later log fdatasync fails with EIO (the log fail-stops); not undone.</item>
/// </list>
/// </summary>
public sealed class FaultTrigger : IDisposable
{
    public const string EnvironmentVariable = "CONVERGE_FAULTS";

    /// <summary>How often the control directory is looked at; only while fault injection is enabled.</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>A flush held longer than this fails with EIO, so a forgotten trigger cannot hang a node for ever.</summary>
    private static readonly TimeSpan MaxHold = TimeSpan.FromSeconds(60);

    private readonly FaultyFileSystem _fileSystem;
    private readonly string _holdPath;
    private readonly string _heldPath;
    private readonly string _failFlushPath;
    private IDisposable? _failFlush;
    private readonly Lock _lock = new();
    private readonly Timer _timer;
    private FaultHold? _hold;

    private FaultTrigger(FaultyFileSystem fileSystem, string controlDirectory, string nodeName)
    {
        _fileSystem = fileSystem;
        _holdPath = Path.Combine(controlDirectory, nodeName + ".hold-flush");
        _heldPath = Path.Combine(controlDirectory, nodeName + ".held");
        _failFlushPath = Path.Combine(controlDirectory, nodeName + ".fail-flush");
        _timer = new Timer(_ => Poll(), null, PollInterval, PollInterval);
    }

    public IStorageFileSystem FileSystem => _fileSystem;

    /// <summary>Wraps <paramref name="inner"/> when fault injection is enabled for this process; null (no cost) otherwise.</summary>
    public static FaultTrigger? FromEnvironment(IStorageFileSystem inner, string nodeName)
    {
        var directory = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrEmpty(directory))
        {
            return null;
        }

        if (!Directory.Exists(directory))
        {
            throw new InvalidOperationException($"{EnvironmentVariable} names '{directory}', which is not a directory");
        }

        return new FaultTrigger(new FaultyFileSystem(inner), directory, nodeName);
    }

    public void Dispose()
    {
        _timer.Dispose();
        lock (_lock)
        {
            _hold?.Dispose();
            _hold = null;
        }
    }

    private void Poll()
    {
        lock (_lock)
        {
            if (_failFlush is null && File.Exists(_failFlushPath))
            {
                _failFlush = _fileSystem.FailFlushes("*.log", FaultyFileSystem.Eio);
            }

            var wanted = File.Exists(_holdPath);
            if (wanted && _hold is null)
            {
                var hold = _fileSystem.Hold("*.log", FaultPoint.FlushData, MaxHold);
                _hold = hold;
                _ = hold.Reached.ContinueWith(_ => File.WriteAllText(_heldPath, ""), TaskScheduler.Default);
            }
            else if (!wanted && _hold is not null)
            {
                _hold.Dispose();
                _hold = null;
                File.Delete(_heldPath);
            }
        }
    }
}
