namespace Converge.Grains.Destage;

/// <summary>
/// Wakes the node's destage loop when a segment is sealed, so destage starts at once instead of at the next poll.
/// A poke with nobody waiting is remembered until the next wait.
/// </summary>
public sealed class DestageSignal
{
    private readonly object _lock = new();
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Poke()
    {
        lock (_lock)
        {
            _next.TrySetResult();
        }
    }

    /// <summary>Completes at the next poke (or a remembered one), or after <paramref name="timeout"/>.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        Task signalled;
        lock (_lock)
        {
            signalled = _next.Task;
        }

        await Task.WhenAny(signalled, Task.Delay(timeout, cancellationToken)).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_lock)
        {
            if (_next.Task.IsCompleted)
            {
                _next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }
}
