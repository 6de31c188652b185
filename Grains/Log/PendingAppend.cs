using System.Diagnostics;
using System.Threading.Tasks.Sources;
using Converge.Log;

namespace Converge.Grains.Log;

/// <summary>
/// One append waiting for its commit. Pooled: the awaiter's <see cref="GetResult"/> returns it to the log's pool,
/// so an append allocates nothing in the steady state.
/// </summary>
internal sealed class PendingAppend : IValueTaskSource<AppendResult>
{
    private readonly SiloLog _owner;
    private ManualResetValueTaskSourceCore<AppendResult> _core;

    public PendingAppend(SiloLog owner)
    {
        _owner = owner;
        // Continuations do not run on the writer thread (that would stall the next group commit), except where
        // Succeed is told to: a caller that only sends its answer, after a commit of a few appends.
        _core.RunContinuationsAsynchronously = true;
    }

    /// <summary>The caller's encoded record; borrowed until the append completes.</summary>
    public ReadOnlyMemory<byte> Record { get; set; }

    public LogRecordHeader Header { get; set; }

    public int FrameLengthBytes { get; set; }

    public LogAddress Address { get; set; }

    /// <summary>Whether the awaiter's continuation may run on the writer thread after a small commit (see <c>AppendCommittedAsync</c>).</summary>
    public bool AnswerOnWriter { get; set; }

    /// <summary>When the append was admitted (<see cref="Stopwatch.GetTimestamp"/>), for the append-duration histogram.</summary>
    public long AdmittedTimestamp { get; set; }

    public ValueTask<AppendResult> AsValueTask() => new(this, _core.Version);

    /// <summary>Completes the append; <paramref name="onThisThread"/> runs the awaiter's continuation here, at once.</summary>
    public void Succeed(AppendResult result, bool onThisThread = false)
    {
        _core.RunContinuationsAsynchronously = !onThisThread;
        _core.SetResult(result);
    }

    public void Fail(Exception exception)
    {
        _core.RunContinuationsAsynchronously = true;
        _core.SetException(exception);
    }

    public AppendResult GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Record = default;
            _core.Reset();
            _owner.ReturnPending(this);
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
