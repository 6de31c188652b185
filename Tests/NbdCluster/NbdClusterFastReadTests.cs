using Converge.DataPath;
using Converge.Tests.Nbd;
using Xunit;

namespace Converge.Tests.NbdCluster;

/// <summary>
/// Reads the compute silo's NBD gateway answers from RAM without the volume controller: they must follow every
/// acknowledged overwrite, and a volume moved to another node and back must show that node's writes.
/// </summary>
[Collection(NbdClusterCollection.Name)]
public sealed class NbdClusterFastReadTests(NbdClusterFixture fixture)
{
    private const ushort CmdRead = 0;
    private const ushort CmdWrite = 1;
    private const ushort CmdDisc = 2;
    private const int Block = NbdClusterFixture.VolumeBlockBytes;
    private const int Blocks = 16;

    [Fact]
    public async Task CachedReads_FollowOverwrites_AndAMoveAwayAndBackShowsTheOtherNodesWrites()
    {
        var volume = await fixture.CreateVolumeAsync("fastreads");
        var expected = new byte[Blocks * Block];
        Random.Shared.NextBytes(expected);
        var before = await DirectReadsAsync("compute-1");

        await using (var first = await RawNbdClient.ConnectAsync(fixture.NbdPort(1)))
        {
            await first.GoAsync(volume, structured: false);
            await WriteAsync(first, 1, 0, expected);
            Assert.Equal(expected, await ReadAsync(first, 2, 0, expected.Length));
            await AssertEveryBlockAsync(first, 100, expected);
            Assert.True(await DirectReadsAsync("compute-1") > before, "no read was answered from RAM by the gateway itself");

            // Overwrites, then reads pipelined right behind them on the same connection.
            for (var round = 0; round < 5; round++)
            {
                var patch = new byte[4 * Block];
                Random.Shared.NextBytes(patch);
                var at = Random.Shared.Next(0, Blocks - 3) * Block;
                await WriteAsync(first, 3, at, patch);
                patch.CopyTo(expected, at);
                await AssertEveryBlockAsync(first, 200 + ((ulong)round * 100), expected);
            }

            await first.SendRequestAsync(CmdDisc, 0, 4, 0, 0);
            Assert.True(await first.IsClosedByServerAsync(), "compute-1 did not close after NBD_CMD_DISC");
        }

        await using (var second = await RawNbdClient.ConnectAsync(fixture.NbdPort(2)))
        {
            await second.GoAsync(volume, structured: false);
            var elsewhere = new byte[4 * Block];
            Random.Shared.NextBytes(elsewhere);
            await WriteAsync(second, 5, 0, elsewhere);
            elsewhere.CopyTo(expected, 0);
            await second.SendRequestAsync(CmdDisc, 0, 6, 0, 0);
            Assert.True(await second.IsClosedByServerAsync(), "compute-2 did not close after NBD_CMD_DISC");
        }

        await using (var again = await RawNbdClient.ConnectAsync(fixture.NbdPort(1)))
        {
            await again.GoAsync(volume, structured: false);
            var beforeAgain = await DirectReadsAsync("compute-1");
            Assert.Equal(expected, await ReadAsync(again, 7, 0, expected.Length));
            await AssertEveryBlockAsync(again, 1000, expected);
            Assert.True(await DirectReadsAsync("compute-1") > beforeAgain, "no read was answered from RAM after the move back");
        }
    }

    private async Task<long> DirectReadsAsync(string node) =>
        (await fixture.Client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(node)).GetStatsAsync()).DirectReads;

    private static async Task WriteAsync(RawNbdClient client, ulong cookie, long offset, byte[] data)
    {
        await client.SendRequestAsync(CmdWrite, 0, cookie, (ulong)offset, (uint)data.Length, data);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(cookie)).Error);
    }

    private static async Task<byte[]> ReadAsync(RawNbdClient client, ulong cookie, long offset, int length)
    {
        await client.SendRequestAsync(CmdRead, 0, cookie, (ulong)offset, (uint)length);
        var reply = await client.ReadSimpleReplyAsync(cookie, length);
        Assert.Equal(0u, reply.Error);
        return reply.Data;
    }

    /// <summary>Reads every block at once (all in flight together) and checks each against <paramref name="expected"/>.</summary>
    private static async Task AssertEveryBlockAsync(RawNbdClient client, ulong firstCookie, byte[] expected)
    {
        for (var b = 0; b < Blocks; b++)
        {
            await client.SendRequestAsync(CmdRead, 0, firstCookie + (ulong)b, (ulong)b * Block, Block);
        }

        var seen = new HashSet<ulong>();
        for (var i = 0; i < Blocks; i++)
        {
            var reply = await client.ReadSimpleReplyAsync(cookie => cookie >= firstCookie && cookie < firstCookie + Blocks ? Block : 0);
            Assert.Equal(0u, reply.Error);
            Assert.True(seen.Add(reply.Cookie), $"cookie {reply.Cookie} answered twice or unknown");
            var b = (int)(reply.Cookie - firstCookie);
            Assert.Equal(expected.AsSpan(b * Block, Block).ToArray(), reply.Data);
        }
    }
}
