using System.Diagnostics;

namespace Converge.Nbd.Server;

/// <summary>
/// A count of bytes that callers reserve before renting buffers and give back after. Waiters are served in
/// arrival order, so a large reservation cannot be starved by a stream of small ones; a reservation larger than
/// the whole budget is clamped to it.
/// </summary>
internal sealed class ByteBudget
{
    private readonly Lock _lock = new();
    private readonly Queue<Waiter> _waiters = new();
    private readonly long _capacityBytes;
    private long _availableBytes;

    public ByteBudget(long capacityBytes)
    {
        Debug.Assert(capacityBytes > 0);
        _capacityBytes = capacityBytes;
        _availableBytes = capacityBytes;
    }

    public long AvailableBytes
    {
        get
        {
            lock (_lock)
            {
                return _availableBytes;
            }
        }
    }

    /// <summary>Reserves bytes; returns the amount actually reserved, which the caller must release.</summary>
    public ValueTask<long> ReserveAsync(long bytes, CancellationToken cancellationToken)
    {
        var needed = Math.Clamp(bytes, 0, _capacityBytes);
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && _availableBytes >= needed)
            {
                _availableBytes -= needed;
                return ValueTask.FromResult(needed);
            }

            waiter = new Waiter(needed);
            _waiters.Enqueue(waiter);
        }

        return WaitAsync(waiter, cancellationToken);
    }

    public void Release(long bytes)
    {
        Debug.Assert(bytes >= 0);
        List<Waiter>? granted = null;
        lock (_lock)
        {
            _availableBytes += bytes;
            Debug.Assert(_availableBytes <= _capacityBytes, "released more than was reserved");
            while (_waiters.Count > 0)
            {
                var head = _waiters.Peek();
                if (head.Abandoned)
                {
                    _waiters.Dequeue();
                    continue;
                }

                if (head.NeededBytes > _availableBytes)
                {
                    break;
                }

                _waiters.Dequeue();
                _availableBytes -= head.NeededBytes;
                head.Granted = true;
                (granted ??= []).Add(head);
            }
        }

        if (granted is not null)
        {
            foreach (var waiter in granted)
            {
                waiter.Completion.TrySetResult(waiter.NeededBytes);
            }
        }
    }

    private async ValueTask<long> WaitAsync(Waiter waiter, CancellationToken cancellationToken)
    {
        await using var registration = cancellationToken.Register(() =>
        {
            bool abandon;
            lock (_lock)
            {
                abandon = !waiter.Granted;
                waiter.Abandoned = abandon;
            }

            if (abandon)
            {
                waiter.Completion.TrySetCanceled(cancellationToken);
                Release(0); // let the waiters behind an abandoned head proceed
            }
        });
        return await waiter.Completion.Task.ConfigureAwait(false);
    }

    private sealed class Waiter(long neededBytes)
    {
        public long NeededBytes { get; } = neededBytes;

        public TaskCompletionSource<long> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Granted { get; set; }

        public bool Abandoned { get; set; }
    }
}
