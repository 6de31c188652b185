using BenchmarkDotNet.Running;
using Converge.Benchmarks;

// `append [seconds] [directory]` measures the silo log end to end; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "append")
{
    var seconds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5;
    var directory = args.Length > 2 ? args[2] : Path.Combine(Path.GetTempPath(), "converge-append-bench");
    await AppendThroughput.RunAsync(directory, TimeSpan.FromSeconds(seconds));
    return 0;
}

// `clientwrite [seconds] [--record]` measures 4 KiB writes through the client API on a fresh local cluster.
if (args.Length > 0 && args[0] == "clientwrite")
{
    var seconds = args.Length > 1 && int.TryParse(args[1], System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : 10;
    return await ClientWriteBenchmark.RunAsync(seconds, args.Contains("--record"));
}

// `clientread [seconds] [--record]` measures 4 KiB reads through the client API from each tier of the read path.
if (args.Length > 0 && args[0] == "clientread")
{
    var seconds = args.Length > 1 && int.TryParse(args[1], System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : 10;
    return await ClientReadBenchmark.RunAsync(seconds, args.Contains("--record"));
}

// `failover [rounds] [--record]` measures write-resume after a storage silo is killed, one fault at a time.
if (args.Length > 0 && args[0] == "failover")
{
    var rounds = args.Length > 1 && int.TryParse(args[1], System.Globalization.CultureInfo.InvariantCulture, out var r) ? r : 10;
    return await FailoverBenchmark.RunAsync(rounds, args.Contains("--record"));
}

BenchmarkSwitcher.FromAssembly(typeof(CodecBenchmarks).Assembly).Run(args);
return 0;
