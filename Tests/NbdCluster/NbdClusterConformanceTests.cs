using System.Net;
using System.Net.Sockets;
using System.Text;
using Converge.Tests.Infrastructure;
using Converge.Tests.Nbd;
using Xunit;

namespace Converge.Tests.NbdCluster;

/// <summary>
/// Hostile and malformed NBD traffic over a raw socket against a real compute silo, and the attachment rules between
/// two compute silos. After every hostile case the silo must still serve a well-behaved client.
/// </summary>
[Collection(NbdClusterCollection.Name)]
public sealed class NbdClusterConformanceTests(NbdClusterFixture fixture)
{
    private const uint OptExportName = 1;
    private const uint OptGo = 7;
    private const uint ErrPolicy = 0x80000002;
    private const uint ErrInvalid = 0x80000003;
    private const uint ErrUnknown = 0x80000006;
    private const uint ErrTooBig = 0x80000009;
    private const ushort CmdRead = 0;
    private const ushort CmdWrite = 1;
    private const ushort CmdDisc = 2;
    private const uint Einval = 22;
    private const uint Enospc = 28;

    [Fact]
    public async Task HostileHandshakes_GetTheSpecsReplyOrADisconnect_AndTheSiloStillServes()
    {
        var volume = await fixture.CreateVolumeAsync("hostile-handshake");
        var port = fixture.NbdPort(1);

        await using (var client = await RawNbdClient.ConnectAsync(port))
        {
            await client.SendOptionHeaderAsync(OptExportName, 0xffffffff);
            Assert.True(await client.IsClosedByServerAsync(), "the silo waited for a 4 GiB export name");
        }

        await fixture.AssertServesAsync(1, volume);

        await using (var client = await RawNbdClient.ConnectAsync(port))
        {
            await client.SendOptionHeaderAsync(OptGo, 0xffffffff);
            var reply = await client.ReadOptionReplyAsync();
            Assert.Equal((OptGo, ErrTooBig), (reply.Option, reply.Type));
            Assert.True(await client.IsClosedByServerAsync(), "the silo kept reading a 4 GiB option");
        }

        await fixture.AssertServesAsync(1, volume);

        await using (var client = await RawNbdClient.ConnectAsync(port))
        {
            await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest(Enumerable.Repeat((byte)'a', 4097).ToArray()));
            Assert.Equal(ErrTooBig, (await client.ReadOptionReplyAsync()).Type);

            await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest(Encoding.UTF8.GetBytes(volume[..3] + "\0" + volume[3..])));
            Assert.Equal(ErrInvalid, (await client.ReadOptionReplyAsync()).Type);

            await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest("no-such-volume"u8.ToArray()));
            var unknown = await client.ReadOptionReplyAsync();
            Assert.Equal(ErrUnknown, unknown.Type);
            Assert.Contains("no-such-volume", Encoding.UTF8.GetString(unknown.Data), StringComparison.Ordinal);

            // The session survived every refusal and still opens the real volume.
            Assert.Equal(NbdClusterFixture.SmallVolumeBytes, await client.GoAsync(volume, structured: true));
        }

        await using (var client = await RawNbdClient.ConnectAsync(port))
        {
            await client.SendOptionAsync(OptExportName, Enumerable.Repeat((byte)'a', 4097).ToArray());
            Assert.True(await client.IsClosedByServerAsync(), "the silo accepted a 4097-byte export name");
        }

        await fixture.AssertServesAsync(1, volume);
    }

    [Fact]
    public async Task HostileRequests_AreRefusedWithoutHarm_AndTheVolumeKeepsItsData()
    {
        var volume = await fixture.CreateVolumeAsync("hostile-requests");
        await using (var client = await RawNbdClient.ConnectAsync(fixture.NbdPort(1)))
        {
            Assert.Equal(NbdClusterFixture.SmallVolumeBytes, await client.GoAsync(volume, structured: false));
            var pattern = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
            await client.SendRequestAsync(CmdWrite, 0, 1, 4096, 8192, pattern);
            Assert.Equal(0u, (await client.ReadSimpleReplyAsync(1)).Error);

            // offset + length wraps past 2^64.
            await client.SendRequestAsync(CmdRead, 0, 2, 0xffffffffffffff00, 4096);
            Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(2)).Error);
            await client.SendRequestAsync(CmdWrite, 0, 3, 0xffffffffffffff00, 512, new byte[512]);
            Assert.Equal(Enospc, (await client.ReadSimpleReplyAsync(3)).Error);

            // 33 MiB is past the advertised maximum: the payload is read and dropped, the framing survives.
            await client.SendRequestAsync(CmdWrite, 0, 4, 0, 33 * 1024 * 1024, new byte[33 * 1024 * 1024]);
            Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(4)).Error);

            await client.SendRequestAsync(0x77, 0, 5, 0, 512);
            Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(5)).Error);
            await client.SendRequestAsync(CmdRead, 0x4000, 6, 0, 512);
            Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(6)).Error);

            // None of it changed the volume.
            await client.SendRequestAsync(CmdRead, 0, 7, 0, 16384);
            var read = await client.ReadSimpleReplyAsync(7, 16384);
            Assert.Equal(0u, read.Error);
            Assert.Equal(new byte[4096], read.Data[..4096]);
            Assert.Equal(pattern, read.Data[4096..12288]);
            Assert.Equal(new byte[4096], read.Data[12288..]);
            await client.SendRequestAsync(CmdDisc, 0, 8, 0, 0);
            Assert.True(await client.IsClosedByServerAsync(), "the silo did not close after NBD_CMD_DISC");
        }

        await fixture.AssertServesAsync(1, volume);
    }

    [Fact]
    public async Task AThousandConnectionsStoppingMidHandshake_LeaveTheSiloServing()
    {
        var volume = await fixture.CreateVolumeAsync("stalled-handshakes");
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < 1000; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, fixture.NbdPort(1)));
                    await socket.SendAsync(new byte[] { 0, 0 }); // half of the client flags, then silence
                }
                catch (SocketException)
                {
                    // Past its connection cap the silo closes new connections at once: that is the point.
                }
            }
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        // The silo notices the closed sockets asynchronously; until then it may still be at its cap and turn clients away.
        await TestCluster.WaitUntilAsync(
            async () => (await ToolRunner.RunAsync("nbdinfo", [fixture.Uri(1, volume)], TimeSpan.FromMinutes(1))).ExitCode == 0,
            TimeSpan.FromSeconds(30),
            "nbdinfo to be served after 1,000 abandoned handshakes");
    }

    [Fact]
    public async Task VolumeOpenOnCompute1_IsRefusedOnCompute2NamingCompute1_ThenTakenOverWithEveryByteAfterDisconnect()
    {
        var volume = await fixture.CreateVolumeAsync("takeover");
        var written = new byte[3 * 1024 * 1024 + 777];
        Random.Shared.NextBytes(written);
        const long offset = 1234567;
        ulong epochOnCompute1;

        await using (var first = await RawNbdClient.ConnectAsync(fixture.NbdPort(1)))
        {
            Assert.Equal(NbdClusterFixture.SmallVolumeBytes, await first.GoAsync(volume, structured: false));
            epochOnCompute1 = await fixture.EpochAsync(volume);
            await first.SendRequestAsync(CmdWrite, 0, 1, offset, (uint)written.Length, written);
            Assert.Equal(0u, (await first.ReadSimpleReplyAsync(1)).Error);

            await using (var second = await RawNbdClient.ConnectAsync(fixture.NbdPort(2)))
            {
                await second.SendOptionAsync(OptGo, RawNbdClient.InfoRequest(Encoding.UTF8.GetBytes(volume)));
                var refused = await second.ReadOptionReplyAsync();
                Assert.Equal((OptGo, ErrPolicy), (refused.Option, refused.Type));
                Assert.Contains("compute-1", Encoding.UTF8.GetString(refused.Data), StringComparison.Ordinal);
            }

            // Listing (NBD_OPT_INFO per export) describes the held volume without attaching it anywhere.
            var list = await ToolRunner.RunOkAsync("nbdinfo", ["--list", $"nbd://127.0.0.1:{fixture.NbdPort(2)}"], TimeSpan.FromMinutes(1));
            Assert.Contains($"export=\"{volume}\"", list, StringComparison.Ordinal);
            Assert.Equal(epochOnCompute1, await fixture.EpochAsync(volume));

            // The refusal did not disturb the holder.
            await first.SendRequestAsync(CmdRead, 0, 2, offset, 4096);
            var check = await first.ReadSimpleReplyAsync(2, 4096);
            Assert.Equal(written[..4096], check.Data);

            await first.SendRequestAsync(CmdDisc, 0, 3, 0, 0);
            // The silo releases the export (detaching the volume) before it closes the socket.
            Assert.True(await first.IsClosedByServerAsync(), "compute-1 did not close after NBD_CMD_DISC");
        }

        await using (var second = await RawNbdClient.ConnectAsync(fixture.NbdPort(2)))
        {
            Assert.Equal(NbdClusterFixture.SmallVolumeBytes, await second.GoAsync(volume, structured: false));
            Assert.True(await fixture.EpochAsync(volume) > epochOnCompute1, "the takeover on compute-2 did not bump the epoch");
            await second.SendRequestAsync(CmdRead, 0, 4, 0, (uint)(offset + written.Length + 4096));
            var read = await second.ReadSimpleReplyAsync(4, (int)(offset + written.Length + 4096));
            Assert.Equal(0u, read.Error);
            Assert.Equal(new byte[offset], read.Data[..(int)offset]);
            Assert.Equal(written, read.Data[(int)offset..(int)(offset + written.Length)]);
            Assert.Equal(new byte[4096], read.Data[(int)(offset + written.Length)..]);
        }
    }
}
