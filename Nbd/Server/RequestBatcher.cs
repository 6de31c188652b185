namespace Converge.Nbd.Server;

/// <summary>
/// For backends: gathers the requests one NBD connection dispatches in a burst (everything its reader parsed from the
/// bytes it had received) and sends them on in one call instead of one call each (a grain call, say). No timer: the first
/// request of a burst queues a drain on the dispatching thread's own work queue, which that thread runs once the reader
/// has parsed all it had and waits for the socket (another idle thread may take it sooner, making the batch smaller).
/// A request made while a drain runs starts the next burst. A request is answered when its call returns, so a fast one
/// waits for the slowest of its call (the volume controller bounds that wait).
/// </summary>
/// <typeparam name="TRequest">One request's arguments.</typeparam>
/// <typeparam name="TReply">One request's answer.</typeparam>
/// <param name="sendOne">The call for a burst of one.</param>
/// <param name="sendMany">The call for a burst of several (at most <paramref name="maxPerCall"/>); answers in request order.</param>
/// <param name="failed">The answer of every request in a call that threw or answered a different number of requests.</param>
/// <param name="maxPerCall">The most requests one call carries; a larger burst is split.</param>
/// <param name="scheduleDrain">Runs the drain later; null for the calling thread's own thread-pool queue (tests pass their own).</param>
/// <param name="callFailed">Told of every call that threw, before its requests are answered <c>failed</c> (for logging).</param>
public sealed class RequestBatcher<TRequest, TReply>(
    Func<TRequest, Task<TReply>> sendOne,
    Func<TRequest[], Task<TReply[]>> sendMany,
    TReply failed,
    int maxPerCall,
    Action<Action>? scheduleDrain = null,
    Action<Exception>? callFailed = null)
{
    private readonly int _maxPerCall = maxPerCall >= 1 ? maxPerCall : throw new ArgumentOutOfRangeException(nameof(maxPerCall), maxPerCall, "a call carries at least one request");
    private readonly object _lock = new();
    private List<Pending> _queued = [];
    private bool _drainQueued;
    private long _calls;
    private long _requests;

    /// <summary>Calls made so far (requests per call = <see cref="Requests"/> over this).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Requests sent so far.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Queues <paramref name="request"/> for this burst's call; completes with its answer, never faulted.</summary>
    public Task<TReply> SubmitAsync(TRequest request)
    {
        var pending = new Pending(request);
        lock (_lock)
        {
            _queued.Add(pending);
            if (_drainQueued)
            {
                return pending.Task;
            }

            _drainQueued = true;
        }

        if (scheduleDrain is null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static batcher => batcher.Drain(), this, preferLocal: true);
        }
        else
        {
            scheduleDrain(Drain);
        }

        return pending.Task;
    }

    private void Drain()
    {
        List<Pending> burst;
        lock (_lock)
        {
            burst = _queued;
            _queued = [];
            _drainQueued = false;
        }

        for (var at = 0; at < burst.Count; at += _maxPerCall)
        {
            _ = SendAsync(burst, at, Math.Min(_maxPerCall, burst.Count - at));
        }
    }

    /// <summary>Never throws: a failed call answers each of its requests with <c>failed</c>.</summary>
    private async Task SendAsync(List<Pending> burst, int from, int count)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _requests, count);
        if (count == 1)
        {
            var single = burst[from];
            try
            {
                single.TrySetResult(await sendOne(single.Request).ConfigureAwait(false));
            }
            catch (Exception e)
            {
                callFailed?.Invoke(e);
                single.TrySetResult(failed);
            }

            return;
        }

        var requests = new TRequest[count];
        for (var i = 0; i < count; i++)
        {
            requests[i] = burst[from + i].Request;
        }

        TReply[]? replies = null;
        try
        {
            replies = await sendMany(requests).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Every request of the call fails alike, as each would have failed on its own call.
            callFailed?.Invoke(e);
        }

        for (var i = 0; i < count; i++)
        {
            burst[from + i].TrySetResult(replies is not null && replies.Length == count ? replies[i] : failed);
        }
    }

    private sealed class Pending(TRequest request) : TaskCompletionSource<TReply>
    {
        public TRequest Request { get; } = request;
    }
}
