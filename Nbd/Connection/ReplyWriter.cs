using System.Buffers;

namespace Converge.Nbd.Connection;

/// <summary>
/// Sends one connection's replies in transmission. A small reply is copied into a shared buffer and the caller goes on
/// at once; the buffer is written by one flush, so the replies completed in one burst (a batch of reads or writes
/// answered by one backend call) cost one write system call instead of one each. A large reply is written from the
/// caller's buffer, after whatever is buffered, under the same lock, so every reply stays contiguous on the wire.
/// </summary>
/// <remarks>
/// A reply that is alone (no other request of the connection in flight, as at queue depth 1) is written before the
/// call returns, so a lone request pays no extra hop. Otherwise the flush is queued on the calling thread's own
/// thread-pool queue and runs after the work in hand, which is usually the rest of the burst's replies. A failed write
/// fails the writer for good: every later reply is refused and <c>onFailure</c> (which cancels the connection) runs once.
/// A request whose reply was only buffered no longer holds its in-flight slot or byte budgets, so the buffer is bounded
/// on its own: past <see cref="MaxBufferedBytes"/> (a client that stopped reading), a reply completes only once it is
/// written, which holds its request's slot and so stops the connection's reader.
/// </remarks>
/// <param name="stream">The connection; only this writer writes to it during transmission.</param>
/// <param name="cancellationToken">The connection's token: a write waiting on a client that stopped reading ends with it.</param>
/// <param name="onFailure">Told once, when a write fails.</param>
/// <param name="scheduleFlush">Runs a flush later; null for the calling thread's own thread-pool queue (tests pass their own).</param>
public sealed class ReplyWriter(Stream stream, CancellationToken cancellationToken, Action onFailure, Action<Func<Task>>? scheduleFlush = null)
{
    /// <summary>Replies up to this size are copied and gathered; larger ones are written from the caller's buffer.</summary>
    public const int MaxCopiedBytes = 64 * 1024;

    /// <summary>Buffered bytes past which a reply waits until it is written.</summary>
    public const int MaxBufferedBytes = 1024 * 1024;

    private const int InitialBufferBytes = 64 * 1024;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly object _lock = new();
    private byte[] _pending = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
    private byte[]? _spare;
    private int _pendingBytes;
    private bool _flushScheduled;
    private TaskCompletionSource? _written;
    private Exception? _failure;
    private long _writes;
    private long _replies;

    /// <summary>Write system calls made for replies so far (replies per write = <see cref="Replies"/> over this).</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Replies sent or buffered so far.</summary>
    public long Replies => Interlocked.Read(ref _replies);

    /// <summary>
    /// Sends <paramref name="first"/> then <paramref name="second"/> as one reply (together at most
    /// <see cref="MaxCopiedBytes"/>). The spans are copied before this returns. Completes when the reply is written
    /// (<paramref name="alone"/>, or more than <see cref="MaxBufferedBytes"/> are buffered) or buffered for a flush that is
    /// on its way; faulted if the writer has failed.
    /// </summary>
    public ValueTask SendAsync(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, bool alone)
    {
        var length = first.Length + second.Length;
        if (length > MaxCopiedBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(second), length, $"a copied reply is at most {MaxCopiedBytes} bytes");
        }

        Task? written = null;
        bool startFlush;
        lock (_lock)
        {
            if (_failure is not null)
            {
                return ValueTask.FromException(Failed());
            }

            EnsureRoom(length);
            first.CopyTo(_pending.AsSpan(_pendingBytes));
            second.CopyTo(_pending.AsSpan(_pendingBytes + first.Length));
            _pendingBytes += length;
            Interlocked.Increment(ref _replies);
            if (_pendingBytes > MaxBufferedBytes)
            {
                _written ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                written = _written.Task;
            }

            startFlush = !_flushScheduled;
            _flushScheduled = true;
        }

        if (startFlush && alone)
        {
            return new ValueTask(FlushAsync());
        }

        if (startFlush)
        {
            ScheduleFlush();
        }

        return written is null ? ValueTask.CompletedTask : new ValueTask(written);
    }

    private void ScheduleFlush()
    {
        if (scheduleFlush is null)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static writer => _ = writer.FlushQueuedAsync(), this, preferLocal: true);
        }
        else
        {
            scheduleFlush(FlushQueuedAsync);
        }
    }

    /// <summary>
    /// Writes a reply too large to copy, <paramref name="header"/> then <paramref name="data"/>, after whatever is
    /// buffered. Both must stay unchanged until this completes.
    /// </summary>
    public async ValueTask SendLargeAsync(ReadOnlyMemory<byte> header, ReadOnlyMemory<byte> data)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await WritePendingAsync(endsFlush: false).ConfigureAwait(false);
            if (_failure is not null)
            {
                throw Failed();
            }

            Interlocked.Increment(ref _replies);
            await WriteAsync(header).ConfigureAwait(false);
            if (!data.IsEmpty)
            {
                await WriteAsync(data).ConfigureAwait(false);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Writes whatever is buffered (when a connection ends); false if it could not be written in time.</summary>
    public async Task<bool> DrainAsync(CancellationToken deadline)
    {
        // A client that stopped reading cannot hold the connection (and its volume) past the deadline.
        using var stop = deadline.Register(onFailure);
        try
        {
            await _writeLock.WaitAsync(deadline).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        try
        {
            await WritePendingAsync(endsFlush: false).ConfigureAwait(false);
            return _failure is null;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or NotSupportedException)
        {
            return false;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task FlushQueuedAsync()
    {
        try
        {
            await FlushAsync().ConfigureAwait(false);
        }
        catch (IOException)
        {
            // Reported through onFailure, which cancels the connection; the requests' callers went on long ago.
        }
    }

    /// <summary>Writes the buffer; throws <see cref="IOException"/> if the writer has failed.</summary>
    private async Task FlushAsync()
    {
        try
        {
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException e)
        {
            Fail(e);
            throw Failed();
        }

        try
        {
            await WritePendingAsync(endsFlush: true).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Writes the buffer until it stays empty; the caller holds the write lock.</summary>
    private async ValueTask WritePendingAsync(bool endsFlush)
    {
        while (true)
        {
            byte[] buffer;
            int bytes;
            TaskCompletionSource? written;
            lock (_lock)
            {
                if (_pendingBytes == 0 || _failure is not null)
                {
                    if (endsFlush)
                    {
                        _flushScheduled = false;
                    }

                    if (_failure is not null)
                    {
                        throw Failed();
                    }

                    return;
                }

                buffer = _pending;
                bytes = _pendingBytes;
                written = _written;
                _written = null;
                _pending = _spare ?? ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
                _spare = null;
                _pendingBytes = 0;
            }

            try
            {
                await WriteAsync(buffer.AsMemory(0, bytes)).ConfigureAwait(false);
                written?.TrySetResult();
            }
            catch (IOException e)
            {
                written?.TrySetException(e);
                throw;
            }
            finally
            {
                lock (_lock)
                {
                    if (_spare is null && _failure is null && buffer.Length == InitialBufferBytes)
                    {
                        _spare = buffer;
                    }
                    else
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
            }
        }
    }

    private async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            Interlocked.Increment(ref _writes);
            await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Fail(e);
            throw Failed();
        }
    }

    private void EnsureRoom(int length)
    {
        if (_pendingBytes + length <= _pending.Length)
        {
            return;
        }

        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_pending.Length * 2, _pendingBytes + length));
        _pending.AsSpan(0, _pendingBytes).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_pending);
        _pending = larger;
    }

    private void Fail(Exception cause)
    {
        TaskCompletionSource? waiting;
        lock (_lock)
        {
            if (_failure is not null)
            {
                return;
            }

            _failure = cause;
            _pendingBytes = 0;
            waiting = _written;
            _written = null;
        }

        waiting?.TrySetException(Failed());
        onFailure();
    }

    private IOException Failed() => new("the connection can no longer send replies", _failure);
}
