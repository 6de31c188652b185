using System.Net;
using Converge.Nbd.Server;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>An <see cref="NbdServer"/> on 127.0.0.1 with an ephemeral port and an in-memory backend.</summary>
public sealed class NbdTestServer : IAsyncDisposable
{
    public const long VolumeSizeBytes = 64L * 1024 * 1024;

    private NbdTestServer(NbdServer server, MemoryNbdBackend backend)
    {
        Server = server;
        Backend = backend;
    }

    public NbdServer Server { get; }

    public MemoryNbdBackend Backend { get; }

    public int Port => Server.LocalEndPoint.Port;

    public string Uri(string export) => $"nbd://127.0.0.1:{Port}/{export}";

    public static async Task<NbdTestServer> StartAsync(NbdServerOptions? options = null)
    {
        var backend = new MemoryNbdBackend();
        backend.AddVolume("vol", VolumeSizeBytes, "test volume");
        var server = new NbdServer(backend, options ?? new NbdServerOptions(), NullLogger<NbdServer>.Instance);
        await server.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);
        return new NbdTestServer(server, backend);
    }

    /// <summary>Proves the server still serves: a fresh client negotiates, writes, reads back and disconnects.</summary>
    public async Task AssertServesAsync()
    {
        await using var client = await RawNbdClient.ConnectAsync(Port);
        var size = await client.GoAsync("vol", structured: false);
        Assert.Equal(VolumeSizeBytes, size);
        var payload = new byte[4096];
        Random.Shared.NextBytes(payload);
        await client.SendRequestAsync(1, 0, 7, 8192, 4096, payload);
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(7)).Error);
        await client.SendRequestAsync(0, 0, 8, 8192, 4096);
        var reply = await client.ReadSimpleReplyAsync(8, 4096);
        Assert.Equal(0u, reply.Error);
        Assert.Equal(payload, reply.Data);
        await client.SendRequestAsync(2, 0, 9, 0, 0);
        Assert.True(await client.IsClosedByServerAsync(), "server did not close after NBD_CMD_DISC");
    }

    /// <summary>
    /// Every buffer reservation is returned once the server is idle. A reply's reservation is released just after the
    /// reply is written, so a client that has read it may look a moment early: this waits up to 5 s before failing.
    /// </summary>
    public async Task AssertBuffersReleasedAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (Server.BufferedBytes != 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(0, Server.BufferedBytes);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await Server.StopAsync(timeout.Token);
        await Server.DisposeAsync();
    }
}
