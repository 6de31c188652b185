using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Converge.Nbd.Server;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>Clients that stall or flood cannot make the server hold more than its bounds.</summary>
public sealed class NbdConnectionLimitTests
{
    [Fact]
    public async Task AThousandStalledHandshakes_StayWithinTheConnectionCap_AndANewClientIsServedAfterwards()
    {
        const int cap = 32;
        await using var server = await NbdTestServer.StartAsync(new NbdServerOptions { MaxConnections = cap, HandshakeDeadline = TimeSpan.FromSeconds(30) });
        var sockets = new List<Socket>();
        var peakActive = 0;
        try
        {
            for (var i = 0; i < 1000; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.Port));
                    await socket.SendAsync(new byte[] { 0, 0 }); // half of the client flags, then silence
                }
                catch (SocketException)
                {
                    // The server may already have closed a connection over the cap: that is the point.
                }

                peakActive = Math.Max(peakActive, server.Server.ActiveConnections);
            }

            Assert.InRange(peakActive, 1, cap);
            Assert.InRange(server.Server.ActiveConnections, 1, cap);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        await WaitUntilAsync(() => server.Server.ActiveConnections == 0, TimeSpan.FromSeconds(30), "stalled connections to be released after the clients closed");
        await server.AssertServesAsync();
    }

    [Fact]
    public async Task StalledHandshake_IsClosedAtTheDeadline()
    {
        await using var server = await NbdTestServer.StartAsync(new NbdServerOptions { HandshakeDeadline = TimeSpan.FromMilliseconds(500) });
        await using var client = await RawNbdClient.ConnectRawAsync(server.Port);
        await client.ReadExactAsync(18, "server greeting");
        Assert.True(await client.IsClosedByServerAsync(), "server kept a silent client past the handshake deadline");
        await WaitUntilAsync(() => server.Server.ActiveConnections == 0, TimeSpan.FromSeconds(10), "the timed-out connection to be released");
        await server.AssertServesAsync();
    }

    [Fact]
    public async Task StopAsync_ClosesConnectionsInTransmission()
    {
        var server = await NbdTestServer.StartAsync();
        await using var client = await RawNbdClient.ConnectAsync(server.Port);
        await client.GoAsync("vol", structured: false);
        await server.DisposeAsync();
        Assert.True(await client.IsClosedByServerAsync(), "a stopped server left a connection open");
        Assert.Equal(0, server.Server.ActiveConnections);
        Assert.Equal(1, server.Backend.Volume("vol").Disposes);
    }

    /// <summary>Polls a condition the server exposes no event for, bounded in time; the message says what was awaited.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var stopwatch = Stopwatch.StartNew();
        while (!condition())
        {
            if (stopwatch.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}");
            }

            await Task.Delay(20);
        }
    }
}
