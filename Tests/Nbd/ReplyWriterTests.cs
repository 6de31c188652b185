using Converge.Nbd.Connection;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>
/// The connection's reply writer: replies completed together leave in one write, a lone reply is written before the
/// call returns, a large reply follows what is buffered without interleaving, and a failed write fails the writer once.
/// </summary>
public sealed class ReplyWriterTests
{
    private readonly List<Func<Task>> _flushes = [];
    private int _failures;

    [Fact]
    public async Task RepliesCompletedTogether_LeaveInOneWrite_InOrder()
    {
        var stream = new RecordingStream();
        var writer = Create(stream);

        for (byte i = 1; i <= 5; i++)
        {
            await writer.SendAsync([i, i], [(byte)(i + 100)], alone: false);
        }

        Assert.Single(_flushes);
        Assert.Empty(stream.Writes);
        await RunFlushesAsync();

        var write = Assert.Single(stream.Writes);
        Assert.Equal(new byte[] { 1, 1, 101, 2, 2, 102, 3, 3, 103, 4, 4, 104, 5, 5, 105 }, write);
        Assert.Equal((1L, 5L), (writer.Writes, writer.Replies));
    }

    [Fact]
    public async Task ALoneReply_IsWrittenBeforeTheCallReturns()
    {
        var stream = new RecordingStream();
        var writer = Create(stream);

        await writer.SendAsync([7, 7, 7], default, alone: true);

        Assert.Empty(_flushes);
        Assert.Equal(new byte[] { 7, 7, 7 }, Assert.Single(stream.Writes));
    }

    [Fact]
    public async Task ALargeReply_FollowsWhatIsBuffered_AndTheCallersBufferIsNotCopied()
    {
        var stream = new RecordingStream();
        var writer = Create(stream);
        await writer.SendAsync([1], default, alone: false);
        var data = new byte[ReplyWriter.MaxCopiedBytes + 1];
        data[^1] = 9;

        await writer.SendLargeAsync(new byte[] { 2, 2 }, data);
        await RunFlushesAsync();

        Assert.Equal(3, stream.Writes.Count);
        Assert.Equal(new byte[] { 1 }, stream.Writes[0]);
        Assert.Equal(new byte[] { 2, 2 }, stream.Writes[1]);
        Assert.Equal(data, stream.Writes[2]);
    }

    [Fact]
    public async Task AReplyLargerThanTheCopyLimit_IsRefused_AndNothingIsBuffered()
    {
        var stream = new RecordingStream();
        var writer = Create(stream);

        Assert.Throws<ArgumentOutOfRangeException>(() => writer.SendAsync(new byte[ReplyWriter.MaxCopiedBytes], [1], alone: true));

        Assert.Empty(_flushes);
        Assert.True(await writer.DrainAsync(CancellationToken.None));
        Assert.Empty(stream.Writes);
    }

    [Fact]
    public async Task AFailedWrite_FailsTheWriterOnce_AndLaterRepliesAreRefused()
    {
        var stream = new RecordingStream { Fail = true };
        var writer = Create(stream);

        await writer.SendAsync([1], default, alone: false);
        await writer.SendAsync([2], default, alone: false);
        await RunFlushesAsync();

        Assert.Equal(1, _failures);
        await Assert.ThrowsAsync<IOException>(async () => await writer.SendAsync([3], default, alone: false));
        await Assert.ThrowsAsync<IOException>(async () => await writer.SendAsync([4], default, alone: true));
        await Assert.ThrowsAsync<IOException>(async () => await writer.SendLargeAsync(new byte[] { 5 }, new byte[ReplyWriter.MaxCopiedBytes + 1]));
        Assert.False(await writer.DrainAsync(CancellationToken.None));
        Assert.Equal(1, _failures);
        Assert.Empty(_flushes);
    }

    [Fact]
    public async Task PastTheBufferBound_ARepliesWaitsUntilItIsWritten_SoAClientThatStopsReadingStopsTheConnection()
    {
        var stream = new RecordingStream { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var writer = Create(stream);
        var reply = new byte[ReplyWriter.MaxCopiedBytes];
        await writer.SendAsync(reply, default, alone: false);
        var flushing = _flushes.Single()();

        // The first write hangs (the client reads nothing); replies keep being buffered up to the bound.
        var sent = 0;
        ValueTask last;
        do
        {
            last = writer.SendAsync(reply, default, alone: false);
            sent++;
        }
        while (last.IsCompleted && sent < 100);

        Assert.False(last.IsCompleted, "a reply past the bound completed before it was written");
        Assert.Equal((ReplyWriter.MaxBufferedBytes / ReplyWriter.MaxCopiedBytes) + 1, sent);
        var further = writer.SendAsync(reply, default, alone: false);
        Assert.False(further.IsCompleted);

        stream.Gate.SetResult();
        await flushing;
        await last;
        await further;
        Assert.Equal((sent + 1) * reply.Length, stream.Writes.Skip(1).Sum(w => w.Length));
    }

    [Fact]
    public async Task ADrainPastItsDeadline_CancelsTheConnection()
    {
        var stream = new RecordingStream { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var writer = Create(stream);
        await writer.SendAsync([1], default, alone: false);
        var flushing = _flushes.Single()();

        Assert.False(await writer.DrainAsync(new CancellationTokenSource(TimeSpan.FromMilliseconds(200)).Token));

        Assert.Equal(1, _failures);
        stream.Gate.SetResult();
        await flushing;
    }

    [Fact]
    public async Task Drain_WritesWhatIsBuffered()
    {
        var stream = new RecordingStream();
        var writer = Create(stream);
        await writer.SendAsync([4, 2], default, alone: false);

        Assert.True(await writer.DrainAsync(CancellationToken.None));

        Assert.Equal(new byte[] { 4, 2 }, Assert.Single(stream.Writes));
        await RunFlushesAsync();
        Assert.Single(stream.Writes);
    }

    private ReplyWriter Create(Stream stream) =>
        new(stream, CancellationToken.None, () => Interlocked.Increment(ref _failures), flush => _flushes.Add(flush));

    private async Task RunFlushesAsync()
    {
        while (_flushes.Count > 0)
        {
            var flush = _flushes[0];
            _flushes.RemoveAt(0);
            await flush();
        }
    }

    /// <summary>Records every write as its own array; fails every write when told to.</summary>
    private sealed class RecordingStream : Stream
    {
        public List<byte[]> Writes { get; } = [];

        public bool Fail { get; init; }

        /// <summary>When set, the first write waits for it.</summary>
        public TaskCompletionSource? Gate { get; init; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Fail)
            {
                throw new IOException("the client went away");
            }

            Writes.Add(buffer.ToArray());
            return Writes.Count == 1 && Gate is not null ? new ValueTask(Gate.Task) : ValueTask.CompletedTask;
        }

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
