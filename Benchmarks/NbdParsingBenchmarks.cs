using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Converge.Nbd.Protocol;

namespace Converge.Benchmarks;

/// <summary>
/// The per-request cost of parsing an NBD transmission header, as the connection's reader does for every I/O.
/// Allocated bytes per operation must stay zero.
/// </summary>
[MemoryDiagnoser]
public class NbdParsingBenchmarks
{
    private const int Requests = 32;
    private readonly byte[] _headers = new byte[Requests * NbdWire.RequestHeaderBytes];

    [GlobalSetup]
    public void Setup()
    {
        for (var i = 0; i < Requests; i++)
        {
            var header = _headers.AsSpan(i * NbdWire.RequestHeaderBytes, NbdWire.RequestHeaderBytes);
            BinaryPrimitives.WriteUInt32BigEndian(header, NbdWire.RequestMagic);
            BinaryPrimitives.WriteUInt16BigEndian(header[4..], (ushort)NbdCommandFlags.Fua);
            BinaryPrimitives.WriteUInt16BigEndian(header[6..], (ushort)(i % 2 == 0 ? NbdCommand.Write : NbdCommand.Read));
            BinaryPrimitives.WriteUInt64BigEndian(header[8..], (ulong)i);
            BinaryPrimitives.WriteUInt64BigEndian(header[16..], (ulong)i * 4096);
            BinaryPrimitives.WriteUInt32BigEndian(header[24..], 4096);
        }
    }

    /// <summary>One header parsed per operation (the batch of 32 is reported per request).</summary>
    [Benchmark(OperationsPerInvoke = Requests)]
    public ulong ParseRequestHeader()
    {
        var sum = 0UL;
        var headers = _headers.AsSpan();
        for (var i = 0; i < Requests; i++)
        {
            if (NbdRequestHeader.TryRead(headers.Slice(i * NbdWire.RequestHeaderBytes, NbdWire.RequestHeaderBytes), out var request))
            {
                sum += request.Cookie + request.OffsetBytes + request.LengthBytes + (ulong)request.Command;
            }
        }

        return sum;
    }
}
