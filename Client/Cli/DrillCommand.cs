using System.CommandLine;
using Converge.Client.Drill;
using Converge.Client.Local;

namespace Converge.Client.Cli;

/// <summary><c>drill</c>: kills, restarts and pauses silos of a fresh private cluster under a verifying workload.</summary>
internal static class DrillCommand
{
    public static Command Build(CliContext cli)
    {
        var duration = new Option<string>("--duration") { Description = "How long faults are injected, e.g. 90s, 3m, 1h (default 3m)", DefaultValueFactory = _ => "3m" };
        var seed = new Option<int?>("--seed") { Description = "Seed of the fault schedule and workload (default: random, printed)" };
        var compute = new Option<int>("--compute") { Description = "Compute silos (at least 2)", DefaultValueFactory = _ => 2 };
        var storage = new Option<int>("--storage") { Description = "Storage silos (at least 3)", DefaultValueFactory = _ => 3 };
        var json = new Option<string?>("--json") { Description = "Also write the result as JSON to this file" };
        var interval = new Option<string>("--fault-interval") { Description = "Mean time between fault injections, e.g. 1s, 2s (default 2s)", DefaultValueFactory = _ => "2s" };
        var noPartitions = new Option<bool>("--no-partitions") { Description = "Run every silo on 127.0.0.1 and inject no network partitions (partitions need root for a network namespace per silo)" };
        var command = new Command("drill", "Fault drill: SIGKILL, SIGSTOP and cut off silos of a fresh private cluster under a verifying workload, then check every block") { duration, seed, compute, storage, json, interval, noPartitions };
        command.SetAction(async (parse, ct) =>
        {
            var length = DrillOptions.ParseDuration(parse.GetValue(duration)!)
                ?? throw new UsageException($"--duration '{parse.GetValue(duration)}' is not a duration like 90s, 3m or 1h");
            var options = new DrillOptions(
                length, parse.GetValue(seed) ?? Random.Shared.Next(), parse.GetValue(compute), parse.GetValue(storage),
                // The global --data: for the drill, a fresh directory kept afterwards; without it, a temporary one.
                parse.GetValue(ConvergeCli.DataOption) is { Length: > 0 } dataDirectory ? dataDirectory : null, parse.GetValue(json))
            {
                MeanFaultInterval = DrillOptions.ParseDuration(parse.GetValue(interval)!)
                    ?? throw new UsageException($"--fault-interval '{parse.GetValue(interval)}' is not a duration like 1s or 2s"),
                Partitions = !parse.GetValue(noPartitions),
            };
            if (options.Check() is { } problem)
            {
                throw new UsageException(problem);
            }

            if (options.JsonPath is { } path && !Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(path))))
            {
                throw new UsageException($"--json: the directory of {path} does not exist");
            }

            var runner = new DrillRunner(SiloBinaries.FindRepositoryRoot(), options, cli.Output);
            DrillResult result;
            try
            {
                result = await runner.RunAsync(ct);
            }
            catch (Exception e) when (e is DrillException or ClusterCommandException)
            {
                throw new ClusterCommandException($"drill (seed {options.Seed}): {e.Message}");
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                await cli.Error.WriteLineAsync($"converge: drill (seed {options.Seed}) cancelled; every silo it started is stopped");
                return ConvergeCli.ExitFailure;
            }

            cli.Output.WriteLine();
            cli.Output.Write(result.ToText());
            if (options.JsonPath is { } jsonPath)
            {
                await File.WriteAllTextAsync(jsonPath, result.ToJson(), CancellationToken.None);
                cli.Output.WriteLine($"drill: result in {jsonPath}");
            }

            return result.Passed ? ConvergeCli.ExitOk : ConvergeCli.ExitFailure;
        });
        return command;
    }
}
