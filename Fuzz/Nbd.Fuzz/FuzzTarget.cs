using Converge.Nbd.Server;
using Converge.Tests.Nbd;
using Microsoft.Extensions.Logging.Abstractions;

namespace Converge.Fuzz.Nbd;

/// <summary>
/// Feeds one input as a whole client stream to the server's handshake and transmission parser. Anything but a
/// clean end is a finding: an exception escaping the connection, a session that does not end, buffer bytes still
/// reserved afterwards, or an export opened and never disposed.
/// </summary>
internal static class FuzzTarget
{
    public const long VolumeSizeBytes = 1L << 20;
    private static readonly TimeSpan SessionTimeout = TimeSpan.FromSeconds(10);
    private static readonly MemoryNbdBackend Backend = CreateBackend();
    private static readonly MemoryVolume Volume = Backend.Volume("vol");

    private static readonly NbdServer Server = new(Backend, new NbdServerOptions
    {
        HandshakeDeadline = TimeSpan.FromSeconds(5),
        MaxInFlightRequestsPerConnection = 16,
    }, NullLogger<NbdServer>.Instance);

    public static void Run(byte[] input)
    {
        var stream = new ScriptedClientStream(input);
        var session = Server.ServeStreamAsync(stream, CancellationToken.None);
        if (!session.Wait(SessionTimeout))
        {
            throw new TimeoutException($"session over a {input.Length}-byte input did not end within {SessionTimeout}");
        }

        session.GetAwaiter().GetResult();
        if (Server.BufferedBytes != 0)
        {
            throw new InvalidOperationException($"{Server.BufferedBytes} buffer bytes still reserved after the session");
        }

        if (Volume.Opens != Volume.Disposes)
        {
            throw new InvalidOperationException($"export opened {Volume.Opens} times but disposed {Volume.Disposes} times");
        }
    }

    private static MemoryNbdBackend CreateBackend()
    {
        var backend = new MemoryNbdBackend();
        backend.AddVolume("vol", VolumeSizeBytes, "fuzz volume");
        backend.AddVolume("held", 4096);
        backend.Refuse("held", "attached elsewhere");
        return backend;
    }
}
