using System.Buffers.Binary;
using Converge.Nbd.Server;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>Raw-socket transmission conformance: bad requests get the spec's error and the connection goes on.</summary>
public sealed class NbdTransmissionTests
{
    private const ushort Read = 0;
    private const ushort Write = 1;
    private const ushort Disc = 2;
    private const ushort Flush = 3;
    private const ushort Trim = 4;
    private const ushort WriteZeroes = 6;
    private const ushort BlockStatus = 7;
    private const uint Einval = 22;
    private const uint Enospc = 28;

    [Fact]
    public async Task OffsetPlusLengthOverflowing64Bits_IsEinvalForReadsAndTrims_EnospcForWrites_AndConnectionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        const ulong offset = ulong.MaxValue - 100;
        await client.SendRequestAsync(Read, 0, 1, offset, 4096);
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(1)).Error);
        await client.SendRequestAsync(Trim, 0, 2, offset, 4096);
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(2)).Error);
        await client.SendRequestAsync(Write, 0, 3, offset, 512, new byte[512]);
        Assert.Equal(Enospc, (await client.ReadSimpleReplyAsync(3)).Error);
        await client.SendRequestAsync(WriteZeroes, 0, 4, offset, 4096);
        Assert.Equal(Enospc, (await client.ReadSimpleReplyAsync(4)).Error);
        await client.SendRequestAsync(Read, 0, 5, NbdTestServer.VolumeSizeBytes - 512, 1024);
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(5)).Error);
        await client.SendRequestAsync(Read, 0, 6, NbdTestServer.VolumeSizeBytes - 512, 512);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(6, 512)).Error);
        Assert.Equal(0, server.Backend.AllocatedBlocksOf("vol"));
    }

    [Fact]
    public async Task WriteOf33MiB_IsDiscardedAndRefusedWithEinval_AndConnectionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        var payload = new byte[33 * 1024 * 1024];
        payload.AsSpan().Fill(0x5a);
        await client.SendRequestAsync(Write, 0, 11, 0, (uint)payload.Length, payload);
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(11)).Error);
        Assert.Equal(0, server.Backend.AllocatedBlocksOf("vol"));
        await client.SendRequestAsync(Read, 0, 12, 0, 4096);
        var reply = await client.ReadSimpleReplyAsync(12, 4096);
        Assert.Equal(new byte[4096], reply.Data);
        await server.AssertBuffersReleasedAsync();
    }

    [Fact]
    public async Task WritePastTheDiscardBound_IsDisconnected_AndServerStillServes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port))
        {
            await client.GoAsync("vol", structured: false);
            await client.SendRequestAsync(Write, 0, 1, 0, 0xffffffff);
            Assert.True(await client.IsClosedByServerAsync(), "server waited for a 4 GiB write payload");
        }

        await server.AssertServesAsync();
    }

    [Fact]
    public async Task UnknownCommand_And_UnknownFlags_AreEinval_AndConnectionContinues()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        await client.SendRequestAsync(99, 0, 1, 0, 4096);
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(1)).Error);
        await client.SendRequestAsync(5, 0, 2, 0, 4096); // NBD_CMD_CACHE is not advertised
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(2)).Error);
        await client.SendRequestAsync(Read, 0x8000, 3, 0, 4096);
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(3)).Error);
        await client.SendRequestAsync(Read, 0x4, 4, 0, 4096); // DF without structured replies
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(4)).Error);
        var payload = new byte[4096];
        payload.AsSpan().Fill(0x77);
        await client.SendRequestAsync(Write, 0x2, 5, 0, 4096, payload); // NO_HOLE is for WRITE_ZEROES only
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(5)).Error);
        Assert.Equal(0, server.Backend.AllocatedBlocksOf("vol"));
        await client.SendRequestAsync(Write, 0x1, 6, 0, 4096, payload); // FUA is accepted
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(6)).Error);
        await client.SendRequestAsync(Flush, 0, 7, 0, 0);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(7)).Error);
        await client.SendRequestAsync(BlockStatus, 0, 8, 0, 4096); // not negotiated
        Assert.Equal(Einval, (await client.ReadSimpleReplyAsync(8)).Error);
    }

    [Fact]
    public async Task BadRequestMagic_IsDisconnected_AndServerStillServes()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using (var client = await RawNbdClient.ConnectAsync(server.Port))
        {
            await client.GoAsync("vol", structured: false);
            await client.SendAsync(new byte[28]);
            Assert.True(await client.IsClosedByServerAsync(), "server kept a connection that lost framing");
        }

        await server.AssertServesAsync();
    }

    [Fact]
    public async Task StructuredReplies_ReadIsOffsetData_ErrorsCarryAMessage_BlockStatusReportsAllocation()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: true, allocationContext: true);
        var payload = new byte[8192];
        Random.Shared.NextBytes(payload);
        await client.SendRequestAsync(Write, 0, 1, 16384, 8192, payload);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(1)).Error);

        await client.SendRequestAsync(Read, 0x4, 2, 16384, 8192);
        var read = await client.ReadStructuredChunkAsync();
        Assert.Equal((1, 1, 2ul), (read.Flags, read.Type, read.Cookie));
        Assert.Equal(16384, BinaryPrimitives.ReadInt64BigEndian(read.Payload));
        Assert.Equal(payload, read.Payload[8..]);

        await client.SendRequestAsync(Read, 0, 3, ulong.MaxValue, 1);
        var error = await client.ReadStructuredChunkAsync();
        Assert.Equal((1, 0x8001, 3ul), (error.Flags, error.Type, error.Cookie));
        Assert.Equal(Einval, BinaryPrimitives.ReadUInt32BigEndian(error.Payload));
        Assert.True(BinaryPrimitives.ReadUInt16BigEndian(error.Payload.AsSpan(4)) > 0, "error chunk has no message");

        await client.SendRequestAsync(BlockStatus, 0, 4, 0, 65536);
        var status = await client.ReadStructuredChunkAsync();
        Assert.Equal((1, 5, 4ul), (status.Flags, status.Type, status.Cookie));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(status.Payload));
        var extents = new List<(uint, uint)>();
        for (var i = 4; i < status.Payload.Length; i += 8)
        {
            extents.Add((BinaryPrimitives.ReadUInt32BigEndian(status.Payload.AsSpan(i)), BinaryPrimitives.ReadUInt32BigEndian(status.Payload.AsSpan(i + 4))));
        }

        Assert.Equal([(16384u, 3u), (8192u, 0u), (40960u, 3u)], extents);

        await client.SendRequestAsync(BlockStatus, 0x8, 5, 0, 65536); // REQ_ONE
        var one = await client.ReadStructuredChunkAsync();
        Assert.Equal(12, one.Payload.Length);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LargeAndEmptyReads_ReturnExactlyTheWrittenBytes(bool structured)
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured);
        var payload = new byte[32 * 1024 * 1024];
        Random.Shared.NextBytes(payload);
        await client.SendRequestAsync(Write, 0, 1, 4096, (uint)payload.Length, payload);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(1)).Error);
        await client.SendRequestAsync(Read, 0, 2, 4096, (uint)payload.Length);
        await client.SendRequestAsync(Read, 0, 3, 4096, 0);
        // Replies come in completion order: the empty read may well overtake the 32 MiB one.
        if (structured)
        {
            var chunks = new[] { await client.ReadStructuredChunkAsync(), await client.ReadStructuredChunkAsync() }.ToDictionary(c => c.Cookie);
            var data = chunks[2];
            Assert.Equal((1, 1), (data.Flags, data.Type));
            Assert.Equal(4096, BinaryPrimitives.ReadInt64BigEndian(data.Payload));
            Assert.True(payload.AsSpan().SequenceEqual(data.Payload.AsSpan(8)), "32 MiB structured read differs from what was written");
            var empty = chunks[3];
            Assert.Equal((1, 0, 0), (empty.Flags, empty.Type, empty.Payload.Length));
        }
        else
        {
            Func<ulong, int> lengthOf = cookie => cookie == 2 ? payload.Length : 0;
            var replies = new[] { await client.ReadSimpleReplyAsync(lengthOf), await client.ReadSimpleReplyAsync(lengthOf) }.ToDictionary(r => r.Cookie);
            Assert.Equal((0u, 0u), (replies[2].Error, replies[3].Error));
            Assert.True(payload.AsSpan().SequenceEqual(replies[2].Data), "32 MiB read differs from what was written");
        }

        await server.AssertBuffersReleasedAsync();
    }

    [Fact]
    public async Task WriteZeroes_NoHoleKeepsBlocksAllocated_TrimAndPlainZeroesDeallocate()
    {
        await using var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        var payload = new byte[16384];
        payload.AsSpan().Fill(0xee);
        await client.SendRequestAsync(Write, 0, 1, 0, 16384, payload);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(1)).Error);
        await client.SendRequestAsync(WriteZeroes, 0x2 | 0x10, 2, 0, 4096); // NO_HOLE + FAST_ZERO
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(2)).Error);
        await client.SendRequestAsync(WriteZeroes, 0, 3, 4096, 4096);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(3)).Error);
        await client.SendRequestAsync(Trim, 0, 4, 8192, 4096);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(4)).Error);
        var volume = server.Backend.Volume("vol");
        Assert.True(volume.IsAllocated(0));
        Assert.False(volume.IsAllocated(4096));
        Assert.False(volume.IsAllocated(8192));
        Assert.Equal(new byte[12288], volume.Read(0, 12288));
        Assert.Equal(payload[..4096], volume.Read(12288, 4096));
    }

    [Fact]
    public async Task ManyPipelinedRequests_AreAllAnsweredOnce_WithinTheInFlightBound()
    {
        await using var server = await NbdTestServer.StartAsync(new NbdServerOptions { MaxInFlightRequestsPerConnection = 8 });
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        const int count = 300;
        var send = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                var payload = new byte[4096];
                payload.AsSpan().Fill((byte)i);
                await client.SendRequestAsync(Write, 0, (ulong)i, (ulong)i * 4096, 4096, payload);
            }
        });
        var seen = new HashSet<ulong>();
        for (var i = 0; i < count; i++)
        {
            var reply = await client.ReadSimpleReplyAsync();
            Assert.Equal(0u, reply.Error);
            Assert.True(seen.Add(reply.Cookie), $"cookie {reply.Cookie} answered twice");
        }

        await send;
        var volume = server.Backend.Volume("vol");
        for (var i = 0; i < count; i++)
        {
            Assert.Equal((byte)i, volume.Read((long)i * 4096, 1)[0]);
        }
    }

    [Fact]
    public async Task Disconnect_WaitsForInFlightWrites_ThenDisposesTheExport()
    {
        await using var server = await NbdTestServer.StartAsync();
        var volume = server.Backend.Volume("vol");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        volume.WriteGate = gate.Task;
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        var payload = new byte[4096];
        payload.AsSpan().Fill(0x42);
        await client.SendRequestAsync(Write, 0, 1, 0, 4096, payload);
        await client.SendRequestAsync(Disc, 0, 2, 0, 0);
        Assert.False(volume.FirstDispose.IsCompleted, "export disposed while a write was gated");
        gate.SetResult();
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(1)).Error);
        Assert.True(await client.IsClosedByServerAsync(), "server did not close after NBD_CMD_DISC");
        await volume.FirstDispose.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, volume.DisposedWithWritesInProgress);
        Assert.Equal(payload, volume.Read(0, 4096));
    }
}
