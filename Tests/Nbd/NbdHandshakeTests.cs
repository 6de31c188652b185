using System.Buffers.Binary;
using System.Text;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>Raw-socket handshake conformance: each case checks the spec's reply or a clean disconnect, then that the server still serves.</summary>
public sealed class NbdHandshakeTests
{
    private const uint OptExportName = 1;
    private const uint OptList = 3;
    private const uint OptInfo = 6;
    private const uint OptGo = 7;
    private const uint RepAck = 1;
    private const uint RepServer = 2;
    private const uint RepInfo = 3;
    private const uint ErrUnsup = 0x80000001;
    private const uint ErrPolicy = 0x80000002;
    private const uint ErrInvalid = 0x80000003;
    private const uint ErrUnknown = 0x80000006;
    private const uint ErrTooBig = 0x80000009;

    [Fact]
    public async Task Greeting_AdvertisesFixedNewstyleAndNoZeroes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        Assert.Equal(3, client.HandshakeFlags);
    }

    [Fact]
    public async Task UnknownClientFlags_AreDisconnected_AndServerStillServes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port, clientFlags: 0x80000003))
        {
            Assert.True(await client.IsClosedByServerAsync(), "server kept a client with unknown flags");
        }

        await server.AssertServesAsync();
    }

    [Fact]
    public async Task ExportNameOption_OfLength0xFFFFFFFF_IsDisconnectedWithoutReading_AndServerStillServes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port))
        {
            await client.SendOptionHeaderAsync(OptExportName, 0xffffffff);
            Assert.True(await client.IsClosedByServerAsync(), "server waited for a 4 GiB export name");
        }

        await server.AssertServesAsync();
    }

    [Fact]
    public async Task GoOption_OfLength4GiB_RepliesTooBig_ThenDisconnects_AndServerStillServes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port))
        {
            await client.SendOptionHeaderAsync(OptGo, 0xffffffff);
            var reply = await client.ReadOptionReplyAsync();
            Assert.Equal((OptGo, ErrTooBig), (reply.Option, reply.Type));
            Assert.True(await client.IsClosedByServerAsync(), "server kept reading a 4 GiB option");
        }

        await server.AssertBuffersReleasedAsync();
        await server.AssertServesAsync();
    }

    [Fact]
    public async Task Go_WithNameOf4097Bytes_RepliesTooBig_AndSessionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest(new byte[4097].Select(_ => (byte)'a').ToArray()));
        var reply = await client.ReadOptionReplyAsync();
        Assert.Equal((OptGo, ErrTooBig), (reply.Option, reply.Type));
        Assert.Equal(NbdTestServer.VolumeSizeBytes, await client.GoAsync("vol", structured: false));
    }

    [Fact]
    public async Task ExportName_WithNameOf4097Bytes_IsDisconnected_AndServerStillServes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port))
        {
            await client.SendOptionAsync(OptExportName, Enumerable.Repeat((byte)'a', 4097).ToArray());
            Assert.True(await client.IsClosedByServerAsync(), "server accepted a 4097-byte export name");
        }

        await server.AssertServesAsync();
    }

    [Fact]
    public async Task Go_WithNulInName_RepliesInvalid_AndSessionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest("vo\0l"u8.ToArray()));
        var reply = await client.ReadOptionReplyAsync();
        Assert.Equal((OptGo, ErrInvalid), (reply.Option, reply.Type));
        Assert.Equal(NbdTestServer.VolumeSizeBytes, await client.GoAsync("vol", structured: true));
    }

    [Fact]
    public async Task Go_WithNameLengthPastTheOption_RepliesInvalid_AndSessionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        var data = RawNbdClient.InfoRequest("vol"u8.ToArray());
        BinaryPrimitives.WriteUInt32BigEndian(data, 0xffffffff);
        await client.SendOptionAsync(OptGo, data);
        Assert.Equal(ErrInvalid, (await client.ReadOptionReplyAsync()).Type);
        Assert.Equal(NbdTestServer.VolumeSizeBytes, await client.GoAsync("vol", structured: false));
    }

    [Fact]
    public async Task Go_UnknownExport_RepliesUnknown_AndPolicyRefusal_RepliesPolicyWithMessage()
    {
        await using var server = await NbdTestServer.StartAsync();
        server.Backend.AddVolume("held", 1 << 20);
        server.Backend.Refuse("held", "attached on compute-2");
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest("nope"u8.ToArray()));
        Assert.Equal(ErrUnknown, (await client.ReadOptionReplyAsync()).Type);
        await client.SendOptionAsync(OptGo, RawNbdClient.InfoRequest("held"u8.ToArray()));
        var refused = await client.ReadOptionReplyAsync();
        Assert.Equal(ErrPolicy, refused.Type);
        Assert.Equal("attached on compute-2", Encoding.UTF8.GetString(refused.Data));
        Assert.Equal(NbdTestServer.VolumeSizeBytes, await client.GoAsync("vol", structured: false));
    }

    [Fact]
    public async Task UnknownOption_RepliesUnsupported_AndSessionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        foreach (var option in new uint[] { 5, 11, 4, 0x7777 })
        {
            await client.SendOptionAsync(option, [1, 2, 3]);
            var reply = await client.ReadOptionReplyAsync();
            Assert.Equal((option, ErrUnsup), (reply.Option, reply.Type));
        }

        Assert.Equal(NbdTestServer.VolumeSizeBytes, await client.GoAsync("vol", structured: false));
    }

    [Fact]
    public async Task List_ListsEveryExportWithItsDescription()
    {
        await using var server = await NbdTestServer.StartAsync();
        server.Backend.AddVolume("other", 1 << 20, "second");
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.SendOptionAsync(OptList, []);
        var listed = new List<(string, string)>();
        for (var i = 0; i < 10; i++)
        {
            var reply = await client.ReadOptionReplyAsync();
            if (reply.Type == RepAck)
            {
                break;
            }

            Assert.Equal(RepServer, reply.Type);
            var nameBytes = (int)BinaryPrimitives.ReadUInt32BigEndian(reply.Data);
            listed.Add((Encoding.UTF8.GetString(reply.Data, 4, nameBytes), Encoding.UTF8.GetString(reply.Data, 4 + nameBytes, reply.Data.Length - 4 - nameBytes)));
        }

        Assert.Equal([("other", "second"), ("vol", "test volume")], listed);
    }

    [Fact]
    public async Task Info_ThenGo_ReportSizeFlagsBlockSizesNameAndDescription()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        foreach (var option in new[] { OptInfo, OptGo })
        {
            await client.SendOptionAsync(option, RawNbdClient.InfoRequest("vol"u8.ToArray(), 1, 2, 3));
            var infos = new Dictionary<ushort, byte[]>();
            while (true)
            {
                var reply = await client.ReadOptionReplyAsync();
                Assert.Equal(option, reply.Option);
                if (reply.Type == RepAck)
                {
                    break;
                }

                Assert.Equal(RepInfo, reply.Type);
                infos[BinaryPrimitives.ReadUInt16BigEndian(reply.Data)] = reply.Data[2..];
            }

            Assert.Equal(NbdTestServer.VolumeSizeBytes, BinaryPrimitives.ReadInt64BigEndian(infos[0]));
            // HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES, CAN_MULTI_CONN, SEND_FAST_ZERO; no READ_ONLY.
            Assert.Equal(0x1 | 0x4 | 0x8 | 0x20 | 0x40 | 0x100 | 0x800, BinaryPrimitives.ReadUInt16BigEndian(infos[0].AsSpan(8)));
            Assert.Equal("vol", Encoding.UTF8.GetString(infos[1]));
            Assert.Equal("test volume", Encoding.UTF8.GetString(infos[2]));
            Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(infos[3]));
            Assert.Equal(4096u, BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(4)));
            Assert.Equal(32u * 1024 * 1024, BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(8)));
        }
    }

    [Fact]
    public async Task ExportName_EntersTransmission_WithSizeAndFlags_AndNoZeroPadding()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.SendOptionAsync(OptExportName, "vol"u8.ToArray());
        var reply = await client.ReadExactAsync(10, "export size and flags");
        Assert.Equal(NbdTestServer.VolumeSizeBytes, BinaryPrimitives.ReadInt64BigEndian(reply));
        await client.SendRequestAsync(0, 0, 5, 0, 512);
        var read = await client.ReadSimpleReplyAsync(5, 512);
        Assert.Equal(0u, read.Error);
        Assert.Equal(new byte[512], read.Data);
    }

    [Fact]
    public async Task Abort_IsAcknowledged_ThenClosed()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port))
        {
            await client.SendOptionAsync(2, []);
            Assert.Equal(RepAck, (await client.ReadOptionReplyAsync()).Type);
            Assert.True(await client.IsClosedByServerAsync(), "server did not close after NBD_OPT_ABORT");
        }

        await server.AssertServesAsync();
    }
}
