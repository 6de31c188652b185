using System.Diagnostics;
using Converge.Fuzz.Nbd;
using SharpFuzz;

// Modes:
//   (none)                 afl-fuzz target (SharpFuzz): one input per run, read from standard input.
//   seeds DIR              writes a seed corpus of well-formed sessions.
//   random SECONDS [SEED]  seeded random sessions in-process for a duration; prints the seed and counts.
//   replay FILE...         runs saved inputs (e.g. afl findings) and reports which fail.
switch (args.Length > 0 ? args[0] : "afl")
{
    case "afl":
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            FuzzTarget.Run(buffer.ToArray());
        });
        return 0;
    case "seeds":
        WriteSeeds(args[1]);
        return 0;
    case "random":
        return RunRandom(TimeSpan.FromSeconds(double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture)),
            args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : Random.Shared.Next());
    case "replay":
        var failed = 0;
        foreach (var file in args[1..])
        {
            try
            {
                FuzzTarget.Run(File.ReadAllBytes(file));
                Console.WriteLine($"ok     {file}");
            }
            catch (Exception ex)
            {
                failed++;
                Console.WriteLine($"FAILED {file}: {ex}");
            }
        }

        return failed == 0 ? 0 : 1;
    default:
        Console.Error.WriteLine("usage: Nbd.Fuzz [afl | seeds DIR | random SECONDS [SEED] | replay FILE...]");
        return 2;
}

static void WriteSeeds(string directory)
{
    Directory.CreateDirectory(directory);
    var seeds = new Dictionary<string, byte[]>
    {
        ["go-rw"] = new SessionBuilder().ClientFlags(3).Go("vol", false, 3)
            .Request(1, 0, 1, 4096, 512, new byte[512]).Request(0, 0, 2, 4096, 512).Request(3, 0, 3, 0, 0).Request(2, 0, 4, 0, 0).ToArray(),
        ["structured-status"] = new SessionBuilder().ClientFlags(3).Option(8, []).MetaContext(true, "vol", "base:allocation").Go("vol")
            .Request(7, 0, 1, 0, 65536).Request(6, 2, 2, 0, 8192).Request(4, 0, 3, 8192, 4096).Request(0, 4, 4, 0, 100).Request(2, 0, 5, 0, 0).ToArray(),
        ["export-name"] = new SessionBuilder().ClientFlags(1).Option(1, "vol"u8).Request(0, 0, 1, 0, 1).ToArray(),
        ["list-info"] = new SessionBuilder().ClientFlags(3).Option(3, []).MetaContext(false, "vol").Go("vol", true, 0, 1, 2, 3).Option(2, []).ToArray(),
        ["bad-requests"] = new SessionBuilder().ClientFlags(3).Go("vol").Request(0, 0, 1, ulong.MaxValue, 4096).Request(99, 0, 2, 0, 0)
            .Request(0, 0x8000, 3, 0, 512).Request(1, 2, 4, 0, 4, [1, 2, 3, 4]).ToArray(),
        ["refused"] = new SessionBuilder().ClientFlags(3).Go("held").Go("nope").Go("vo\0l").Option(77, [1]).ToArray(),
    };
    foreach (var (name, bytes) in seeds)
    {
        File.WriteAllBytes(Path.Combine(directory, name), bytes);
    }
}

static int RunRandom(TimeSpan duration, int seed)
{
    Console.WriteLine($"random NBD sessions: seed {seed}, duration {duration}");
    var random = new Random(seed);
    var stopwatch = Stopwatch.StartNew();
    long executions = 0;
    long inputBytes = 0;
    while (stopwatch.Elapsed < duration)
    {
        var input = Generator.Session(random);
        try
        {
            FuzzTarget.Run(input);
        }
        catch (Exception ex)
        {
            var path = Path.Combine(Path.GetTempPath(), $"nbd-fuzz-failure-{seed}-{executions}.bin");
            File.WriteAllBytes(path, input);
            Console.WriteLine($"FINDING after {executions} executions (seed {seed}); input saved to {path}:\n{ex}");
            return 1;
        }

        executions++;
        inputBytes += input.Length;
    }

    Console.WriteLine($"{executions} executions, {inputBytes} input bytes, {executions / stopwatch.Elapsed.TotalSeconds:F0}/s, no findings (seed {seed})");
    return 0;
}
