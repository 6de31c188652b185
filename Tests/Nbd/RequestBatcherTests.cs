using Converge.Nbd.Server;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>
/// The batcher a backend puts between an NBD connection and its calls: a burst goes out as one call, answers reach
/// their own requests, a larger burst is split, and a call that fails answers each of its requests as failed.
/// </summary>
public sealed class RequestBatcherTests
{
    private readonly Queue<Action> _drains = new();
    private readonly List<int[]> _manyCalls = [];
    private readonly List<int> _oneCalls = [];

    [Fact]
    public async Task ABurst_GoesOutAsOneCall_AndEachRequestGetsItsOwnAnswer()
    {
        var batcher = Create(maxPerCall: 64);

        var replies = Enumerable.Range(1, 5).Select(batcher.SubmitAsync).ToArray();
        Assert.Single(_drains);
        RunDrains();

        Assert.Equal(new[] { -1, -2, -3, -4, -5 }, await Task.WhenAll(replies));
        Assert.Equal(new[] { 1, 2, 3, 4, 5 }, Assert.Single(_manyCalls));
        Assert.Empty(_oneCalls);
        Assert.Equal((1L, 5L), (batcher.Calls, batcher.Requests));
    }

    [Fact]
    public async Task ARequestAfterTheDrain_StartsTheNextBurst_AndALoneRequestUsesTheSingleCall()
    {
        var batcher = Create(maxPerCall: 64);

        var first = batcher.SubmitAsync(7);
        RunDrains();
        var second = batcher.SubmitAsync(8);
        RunDrains();

        Assert.Equal((-7, -8), (await first, await second));
        Assert.Equal([7, 8], _oneCalls);
        Assert.Empty(_manyCalls);
    }

    [Fact]
    public async Task ABurstLargerThanACall_IsSplit_InOrder()
    {
        var batcher = Create(maxPerCall: 2);

        var replies = Enumerable.Range(1, 5).Select(batcher.SubmitAsync).ToArray();
        RunDrains();

        Assert.Equal(new[] { -1, -2, -3, -4, -5 }, await Task.WhenAll(replies));
        Assert.Equal([[1, 2], [3, 4]], _manyCalls);
        Assert.Equal([5], _oneCalls);
    }

    [Theory]
    [InlineData("many throws")]
    [InlineData("many answers too few")]
    [InlineData("one throws")]
    public async Task ACallThatFails_AnswersEachOfItsRequestsAsFailed(string failure)
    {
        var batcher = new RequestBatcher<int, int>(
            one => failure == "one throws" ? throw new TimeoutException("no answer") : Task.FromResult(-one),
            many => failure == "many throws" ? Task.FromException<int[]>(new TimeoutException("no answer")) : Task.FromResult(new[] { -many[0] }),
            failed: int.MinValue,
            maxPerCall: 64,
            _drains.Enqueue);

        var replies = (failure == "one throws" ? [9] : new[] { 1, 2, 3 }).Select(batcher.SubmitAsync).ToArray();
        RunDrains();

        Assert.All(await Task.WhenAll(replies), reply => Assert.Equal(int.MinValue, reply));
    }

    [Fact]
    public void ACallOfNoRequests_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Create(maxPerCall: 0));
    }

    private RequestBatcher<int, int> Create(int maxPerCall) => new(
        one =>
        {
            _oneCalls.Add(one);
            return Task.FromResult(-one);
        },
        many =>
        {
            _manyCalls.Add(many);
            return Task.FromResult(many.Select(r => -r).ToArray());
        },
        failed: int.MinValue,
        maxPerCall,
        _drains.Enqueue);

    private void RunDrains()
    {
        for (var i = 0; i < 100 && _drains.TryDequeue(out var drain); i++)
        {
            drain();
        }
    }
}
