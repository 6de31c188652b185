using System.Globalization;

namespace Converge.Client.Drill;

/// <summary>The verdict on one block read back.</summary>
public enum BlockVerdict
{
    Ok,

    /// <summary>An acknowledged version is no longer visible (zeros or an older version).</summary>
    LostWrite,

    /// <summary>Data that was never written here: corrupt, misdirected, or a version never sent.</summary>
    WrongRead,
}

/// <summary>
/// What the drill knows about each block: the highest ACKNOWLEDGED version and the highest version ever SENT. A write
/// that failed or was in flight when a fault hit may or may not be visible later, so a read may return any version in
/// [acknowledged when the read began, sent when it ended]; nothing older, nothing newer, nothing else. Each block has
/// one writer (writers own disjoint blocks), so its versions are issued in order; readers run concurrently.
/// </summary>
public sealed class DrillModel
{
    public const int MaxProblemsKept = 32;

    private readonly long[] _acknowledged;
    private readonly long[] _sent;
    private readonly List<string> _problems = [];
    private long _lostWrites;
    private long _wrongReads;

    /// <summary>Called with each problem's block and description as it is found (the drill prints it at once).</summary>
    public Action<long, string>? OnProblem { get; set; }

    public DrillModel(Guid volumeId, long blockCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        VolumeId = volumeId;
        BlockCount = blockCount;
        _acknowledged = new long[blockCount];
        _sent = new long[blockCount];
    }

    public Guid VolumeId { get; }

    public long BlockCount { get; }

    public long LostWrites => Interlocked.Read(ref _lostWrites);

    public long WrongReads => Interlocked.Read(ref _wrongReads);

    /// <summary>The first problems found, each naming the block, what was read and what was allowed.</summary>
    public IReadOnlyList<string> Problems
    {
        get
        {
            lock (_problems)
            {
                return _problems.ToArray();
            }
        }
    }

    /// <summary>The next version of <paramref name="block"/>, recorded as sent before the write is issued.</summary>
    public long BeginWrite(long block)
    {
        var version = Volatile.Read(ref _sent[block]) + 1;
        Volatile.Write(ref _sent[block], version);
        return version;
    }

    /// <summary>Records that <paramref name="version"/> of <paramref name="block"/> was acknowledged.</summary>
    public void Acknowledge(long block, long version)
    {
        if (version > Volatile.Read(ref _sent[block]))
        {
            throw new InvalidOperationException($"block {block}: version {version} acknowledged before it was sent");
        }

        if (version > Volatile.Read(ref _acknowledged[block]))
        {
            Volatile.Write(ref _acknowledged[block], version);
        }
    }

    /// <summary>The oldest version a read of <paramref name="block"/> that begins now may return.</summary>
    public long MinimumVisible(long block) => Volatile.Read(ref _acknowledged[block]);

    public long Sent(long block) => Volatile.Read(ref _sent[block]);

    /// <summary>True when <paramref name="block"/> was ever written (even without an acknowledgement).</summary>
    public bool Written(long block) => Volatile.Read(ref _sent[block]) > 0;

    /// <summary>
    /// Checks <paramref name="data"/> read from <paramref name="block"/> by a read that began when
    /// <see cref="MinimumVisible"/> was <paramref name="minimumVersion"/>; counts and keeps any problem.
    /// </summary>
    public BlockVerdict Check(long block, ReadOnlySpan<byte> data, long minimumVersion)
    {
        var maximumVersion = Sent(block);
        var offsetBytes = block * BlockStamp.BlockBytes;
        var state = BlockStamp.Inspect(data, VolumeId, offsetBytes, out var version);
        var (verdict, what) = state switch
        {
            StampState.Zero when minimumVersion == 0 => (BlockVerdict.Ok, ""),
            StampState.Zero => (BlockVerdict.LostWrite, "reads as zeros"),
            StampState.Corrupt => (BlockVerdict.WrongRead, "fails its checksum (torn or corrupt)"),
            StampState.Misplaced => (BlockVerdict.WrongRead, "holds another block's or volume's stamp"),
            _ when version < minimumVersion => (BlockVerdict.LostWrite, $"holds version {version}"),
            _ when version > maximumVersion => (BlockVerdict.WrongRead, $"holds version {version}, never sent"),
            _ => (BlockVerdict.Ok, ""),
        };
        if (verdict == BlockVerdict.Ok)
        {
            return verdict;
        }

        Interlocked.Increment(ref verdict == BlockVerdict.LostWrite ? ref _lostWrites : ref _wrongReads);
        var message = string.Create(CultureInfo.InvariantCulture,
            $"{verdict}: block {block} (offset {offsetBytes}) {what}; acknowledged {minimumVersion}, sent {maximumVersion}");
        var keep = false;
        lock (_problems)
        {
            if (_problems.Count < MaxProblemsKept)
            {
                _problems.Add(message);
                keep = true;
            }
        }

        if (keep)
        {
            OnProblem?.Invoke(block, message);
        }

        return verdict;
    }
}
