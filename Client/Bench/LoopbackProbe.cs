using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Converge.Client.Bench;

/// <summary>Median TCP round trip over 127.0.0.1: one byte there and back, on blocking sockets.</summary>
public static class LoopbackProbe
{
    public static double MedianRoundTripUs(int roundTrips = 2000)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.Connect(listener.LocalEndPoint!);
        using var server = listener.Accept();
        server.NoDelay = true;
        server.ReceiveTimeout = 5000;
        client.ReceiveTimeout = 5000;

        var echo = new Thread(() =>
        {
            var one = new byte[1];
            for (var i = 0; i < roundTrips; i++)
            {
                if (server.Receive(one) != 1)
                {
                    return;
                }

                server.Send(one);
            }
        }) { IsBackground = true, Name = "loopback-echo" };
        echo.Start();

        var samples = new double[roundTrips];
        var buffer = new byte[1];
        for (var i = 0; i < roundTrips; i++)
        {
            var start = Stopwatch.GetTimestamp();
            client.Send(buffer);
            if (client.Receive(buffer) != 1)
            {
                throw new BenchException("loopback probe: the echo side closed early");
            }

            samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }

        echo.Join(TimeSpan.FromSeconds(5));
        Array.Sort(samples);
        return samples[roundTrips / 2];
    }
}
