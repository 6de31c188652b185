using System.Diagnostics;
using Converge.Client;
using Converge.DataPath;
using Orleans;
using Xunit.Abstractions;

namespace Converge.Tests.ReadPath;

/// <summary>
/// Runs a seeded sequence of operations against one volume on two compute nodes and checks every read against a
/// <see cref="ReadModel"/>. Up to <see cref="MaxInFlight"/> operations run at once: a write never overlaps (in blocks)
/// another operation in flight, a read may overlap writes in flight (either version is allowed for those bytes),
/// evictions overlap anything. All model updates and checks happen on the driver loop, one at a time.
/// </summary>
internal sealed partial class ReadModelRun(IClusterClient cluster, ITestOutputHelper output, string volume, int seed, long volumeBytes)
{
    private const int MaxInFlight = 4;
    private const int BlockBytes = ReadPathSupport.BlockBytes;
    private const int RecentOps = 16;
    private static readonly TimeSpan OpenTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan DestageTimeout = TimeSpan.FromSeconds(45);

    private readonly ReadModel _model = new(volumeBytes);
    private readonly ReadModelHistory _history = new();
    private readonly List<InFlight> _inFlight = [];
    private readonly Queue<string> _recent = new();
    private readonly Dictionary<ReadModelOpKind, int> _counts = [];
    private VolumeHandle? _handle;
    private string _holder = "compute-1";
    private int _racingReads;
    private long _lastWrittenBlock = -1;

    private string Other => _holder == "compute-1" ? "compute-2" : "compute-1";

    public async Task RunAsync(int totalOps)
    {
        var source = new ReadModelOpSource(seed, volumeBytes, totalOps);
        var clock = Stopwatch.StartNew();
        _handle = await ReadPathSupport.OpenWhenFreeAsync(cluster, volume, _holder, OpenTimeout);
        try
        {
            for (var index = 0; index < totalOps; index++)
            {
                var op = source.Next(index);
                Remember(op);
                _counts[op.Kind] = _counts.GetValueOrDefault(op.Kind) + 1;
                await StartAsync(op);
            }

            await DrainAsync();
            output.WriteLine($"{totalOps} ops in {clock.Elapsed.TotalSeconds:0.0} s ({_racingReads} reads raced a write): " +
                string.Join(", ", _counts.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value}")));
            await VerifyWholeVolumeAsync();
        }
        catch (Exception e) when (e is not ReadModelFailure)
        {
            throw Failure($"{e.GetType().Name}: {e.Message}", e);
        }
        finally
        {
            await _handle.DisposeAsync();
        }
    }

    private async Task StartAsync(ReadModelOp op)
    {
        switch (op.Kind)
        {
            case ReadModelOpKind.Move:
                await DrainAsync();
                await _handle!.DisposeAsync();
                _holder = Other;
                _handle = await ReadPathSupport.OpenWhenFreeAsync(cluster, volume, _holder, OpenTimeout);
                return;
            case ReadModelOpKind.WaitForDestage:
                await DrainAsync();
                await WaitForDestageAsync(op);
                return;
        }

        var first = op.OffsetBytes / BlockBytes;
        var last = (op.OffsetBytes + op.LengthBytes - 1) / BlockBytes;
        while (_inFlight.Count >= MaxInFlight || (op.IsWrite && _inFlight.Exists(f => f.Overlaps(first, last))))
        {
            await CompleteOneAsync();
        }

        var handle = _handle!;
        switch (op.Kind)
        {
            case ReadModelOpKind.Write or ReadModelOpKind.WriteUnaligned:
                var data = op.WrittenBytes();
                var write = new PendingWrite(op.OffsetBytes, op.LengthBytes, data);
                _inFlight.Add(new InFlight(op, first, last, write, null, WriteAsync(handle.WriteAsync(op.OffsetBytes, data))));
                break;
            case ReadModelOpKind.Zero:
                var zero = new PendingWrite(op.OffsetBytes, op.LengthBytes, null);
                _inFlight.Add(new InFlight(op, first, last, zero, null, WriteAsync(handle.ZeroAsync(op.OffsetBytes, op.LengthBytes))));
                break;
            case ReadModelOpKind.Read:
                var expect = new ReadExpectation(_model, op.OffsetBytes, op.LengthBytes, PendingWrites());
                _racingReads += expect.Racing ? 1 : 0;
                _inFlight.Add(new InFlight(op, first, last, null, expect, handle.ReadAsync(op.OffsetBytes, op.LengthBytes)));
                break;
            case ReadModelOpKind.Evict:
                _inFlight.Add(new InFlight(op, -1, -1, null, null, EvictAsync(CacheOf(_holder).EvictAsync(volume, op.OffsetBytes, op.LengthBytes))));
                break;
            case ReadModelOpKind.EvictVolume:
                var task = CacheOf(op.OnHolder ? _holder : Other).EvictVolumeAsync(volume);
                _inFlight.Add(new InFlight(op, -1, -1, null, null, EvictAsync(task)));
                break;
        }
    }

    private IEnumerable<PendingWrite> PendingWrites()
    {
        foreach (var f in _inFlight)
        {
            if (f.Write is not null)
            {
                yield return f.Write;
            }
        }
    }

    private async Task CompleteOneAsync()
    {
        var done = await Task.WhenAny(_inFlight.Select(f => f.Task));
        var index = _inFlight.FindIndex(f => f.Task == done);
        var completed = _inFlight[index];
        _inFlight.RemoveAt(index);
        var reply = await completed.Task;
        if (reply.Status != IoStatus.Ok)
        {
            throw Failure($"{completed.Op} on {_holder} answered {reply.Status}");
        }

        if (completed.Write is { } write)
        {
            _model.Apply(write.OffsetBytes, write.LengthBytes, write.Data);
            _history.Applied(completed.Op);
            _lastWrittenBlock = completed.FirstBlock;
        }
        else if (completed.Expectation is { } expectation && expectation.Check(reply.Data) is { } problem)
        {
            throw Failure($"{completed.Op} on {_holder}: {problem}{await ExplainAsync(expectation, completed.Op.OffsetBytes, reply.Data)}");
        }
    }

    private async Task DrainAsync()
    {
        while (_inFlight.Count > 0)
        {
            await CompleteOneAsync();
        }
    }

    private static async Task<VolumeReadReply> WriteAsync(Task<IoStatus> write) => new(await write, null);

    private static async Task<VolumeReadReply> EvictAsync(Task eviction)
    {
        await eviction;
        return new VolumeReadReply(IoStatus.Ok, null);
    }

    private ICacheNodeGrain CacheOf(string node) => cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(node));

    private void Remember(ReadModelOp op)
    {
        if (_recent.Count == RecentOps)
        {
            _recent.Dequeue();
        }

        _recent.Enqueue(op.ToString());
    }

    /// <summary>
    /// Which earlier version, if any, the wrong bytes of a read belong to; then the first wrong block read again three
    /// times (as it is, after evicting it on the holder, after evicting it on both nodes), each with the tier that
    /// answered and whether it was right: a wrong copy in a cache, in the log or in the extents tell themselves apart.
    /// </summary>
    private async Task<string> ExplainAsync(ReadExpectation expectation, long readOffset, byte[]? returned)
    {
        if (expectation.FirstWrongOffset is not { } at || returned is null)
        {
            return "";
        }

        var text = new System.Text.StringBuilder("\n").Append(_history.Describe(at, readOffset, returned));
        var block = at / BlockBytes;
        foreach (var (step, evictOn) in new[] { ("again", Array.Empty<string>()), ("evicted on the holder", [_holder]), ("evicted on both nodes", [_holder, Other]) })
        {
            try
            {
                foreach (var node in evictOn)
                {
                    await CacheOf(node).EvictAsync(volume, block * BlockBytes, BlockBytes);
                }

                var before = await ReadPathSupport.StatsAsync(cluster, _holder);
                var check = new ReadExpectation(_model, block * BlockBytes, BlockBytes, PendingWrites());
                var reply = await _handle!.ReadAsync(block * BlockBytes, BlockBytes);
                var after = await ReadPathSupport.StatsAsync(cluster, _holder);
                var verdict = reply.Status != IoStatus.Ok ? reply.Status.ToString() : check.Check(reply.Data) is null ? "right" : "WRONG";
                text.Append($"\nblock {block} read {step}: {verdict}, from {TierDelta(before, after)}");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                text.Append($"\nblock {block} read {step}: {e.GetType().Name}: {e.Message}");
            }
        }

        return text.ToString();
    }

    private static string TierDelta(CacheNodeStats before, CacheNodeStats after)
    {
        var tiers = new (string Name, long Blocks)[]
        {
            ("RAM", after.RamHits - before.RamHits), ("flash", after.FlashHits - before.FlashHits), ("peer", after.PeerHits - before.PeerHits),
            ("log", after.LogReads - before.LogReads), ("extents", after.ExtentReads - before.ExtentReads), ("zeros", after.ZeroReads - before.ZeroReads),
        };
        var served = tiers.Where(t => t.Blocks > 0).Select(t => t.Name).ToArray();
        return served.Length == 0 ? "no tier counted" : string.Join("+", served);
    }

    private ReadModelFailure Failure(string what, Exception? inner = null) =>
        new($"seed {seed} (replay with CONVERGE_READ_MODEL_SEED={seed}): {what}\nrecent ops, oldest first: {string.Join("; ", _recent)}", inner);

    /// <summary>An operation in flight; blocks [FirstBlock, LastBlock] are what a new write must not overlap (-1: none).</summary>
    private sealed record InFlight(ReadModelOp Op, long FirstBlock, long LastBlock, PendingWrite? Write, ReadExpectation? Expectation, Task<VolumeReadReply> Task)
    {
        public bool Overlaps(long first, long last) => FirstBlock >= 0 && FirstBlock <= last && first <= LastBlock;
    }
}

internal sealed class ReadModelFailure(string message, Exception? inner) : Exception(message, inner);
