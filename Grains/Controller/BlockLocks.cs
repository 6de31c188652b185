namespace Converge.Grains.Controller;

/// <summary>
/// Orders overlapping I/O on the same blocks inside one (reentrant, single-threaded) controller activation:
/// each range waits for the previous holders of any of its blocks. Not thread-safe by design; grain turns are serial.
/// </summary>
internal sealed class BlockLocks
{
    private readonly Dictionary<long, Task> _tails = [];

    public async Task<Release> AcquireAsync(long firstBlock, long lastBlock)
    {
        var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var waits = new List<Task>();
        for (var block = firstBlock; block <= lastBlock; block++)
        {
            if (_tails.TryGetValue(block, out var previous) && !previous.IsCompleted)
            {
                waits.Add(previous);
            }

            _tails[block] = mine.Task;
        }

        if (waits.Count > 0)
        {
            await Task.WhenAll(waits);
        }

        return new Release(this, firstBlock, lastBlock, mine);
    }

    internal readonly struct Release(BlockLocks owner, long firstBlock, long lastBlock, TaskCompletionSource mine) : IDisposable
    {
        public void Dispose()
        {
            for (var block = firstBlock; block <= lastBlock; block++)
            {
                if (owner._tails.TryGetValue(block, out var tail) && tail == mine.Task)
                {
                    owner._tails.Remove(block);
                }
            }

            mine.SetResult();
        }
    }
}
