namespace Converge.Fuzz.Nbd;

/// <summary>
/// Random client sessions: mostly well-formed (so the fuzzing gets past the handshake), with hostile values at
/// the edges (boundary offsets, oversized lengths, unknown flags and commands), then byte-level mutations.
/// </summary>
internal static class Generator
{
    private static readonly string[] Queries = ["base:allocation", "base:", "x:y", "nocolon"];
    private static readonly string[] Names = ["vol", "held", "nope", "", "vo\0l", new string('n', 4097), "vol\u00e9"];

    public static byte[] Session(Random random)
    {
        var builder = new SessionBuilder().ClientFlags(random.Next(10) == 0 ? (uint)random.Next() : (uint)random.Next(4));
        var entered = false;
        var options = random.Next(6);
        for (var i = 0; i < options && !entered; i++)
        {
            switch (random.Next(10))
            {
                case 0:
                    builder.Option(8, []);
                    break;
                case 1:
                    builder.Option(3, random.Next(4) == 0 ? [1] : []);
                    break;
                case 2:
                    builder.MetaContext(random.Next(2) == 0, Pick(random), random.Next(3) == 0 ? [] : Queries[..random.Next(1, 5)]);
                    break;
                case 3:
                    builder.Go(Pick(random), info: true, 0, 1, 2, 3);
                    break;
                case 4:
                    builder.Option((uint)random.Next(0, 20), RandomBytes(random, random.Next(16)));
                    break;
                case 5:
                    builder.Raw(RandomBytes(random, random.Next(1, 24)));
                    break;
                default:
                    var name = random.Next(4) == 0 ? Pick(random) : "vol";
                    if (random.Next(5) == 0)
                    {
                        builder.Option(1, System.Text.Encoding.UTF8.GetBytes(name));
                    }
                    else
                    {
                        builder.Go(name, info: false, random.Next(2) == 0 ? [] : [3]);
                    }

                    entered = name == "vol";
                    break;
            }
        }

        var requests = entered ? random.Next(40) : random.Next(3);
        for (var i = 0; i < requests; i++)
        {
            var command = random.Next(12) == 0 ? (ushort)random.Next(0, 16) : (ushort)new[] { 0, 1, 3, 4, 6, 7 }[random.Next(6)];
            var flags = random.Next(6) == 0 ? (ushort)random.Next(0, 64) : (ushort)0;
            var offset = Offset(random);
            var length = Length(random);
            var payload = command == 1 ? RandomBytes(random, (int)Math.Min(length, random.Next(8) == 0 ? 100u : 70000u)) : [];
            builder.Request(command, flags, (ulong)i, offset, length, payload);
        }

        if (random.Next(2) == 0)
        {
            builder.Request(2, 0, 999, 0, 0);
        }

        return Mutate(random, builder.ToArray());
    }

    private static string Pick(Random random) => Names[random.Next(Names.Length)];

    private static ulong Offset(Random random) => random.Next(7) switch
    {
        0 => 0,
        1 => (ulong)FuzzTarget.VolumeSizeBytes,
        2 => (ulong)FuzzTarget.VolumeSizeBytes - (ulong)random.Next(1, 8192),
        3 => ulong.MaxValue - (ulong)random.Next(0, 8192),
        4 => (ulong)random.NextInt64(),
        _ => (ulong)random.NextInt64(0, FuzzTarget.VolumeSizeBytes),
    };

    private static uint Length(Random random) => random.Next(7) switch
    {
        0 => 0,
        1 => (uint)random.Next(1, 70000),
        2 => (uint)FuzzTarget.VolumeSizeBytes,
        3 => 32u * 1024 * 1024 + (uint)random.Next(0, 2),
        4 => uint.MaxValue - (uint)random.Next(0, 4),
        _ => (uint)random.Next(1, 9) * 512,
    };

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Mutate(Random random, byte[] bytes)
    {
        if (bytes.Length == 0 || random.Next(3) != 0)
        {
            return bytes;
        }

        var mutated = (byte[])bytes.Clone();
        switch (random.Next(3))
        {
            case 0:
                for (var i = random.Next(1, 8); i > 0; i--)
                {
                    mutated[random.Next(mutated.Length)] ^= (byte)(1 << random.Next(8));
                }

                return mutated;
            case 1:
                return mutated[..random.Next(mutated.Length)];
            default:
                var at = random.Next(mutated.Length);
                return [.. mutated[..at], .. RandomBytes(random, random.Next(1, 32)), .. mutated[at..]];
        }
    }
}
