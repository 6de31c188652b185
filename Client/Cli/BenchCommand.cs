using System.CommandLine;
using Converge.Client.Bench;
using Converge.Client.Local;

namespace Converge.Client.Cli;

/// <summary><c>bench</c>: fio over NBD against a fresh cluster and against baselines measured in the same run.</summary>
internal static class BenchCommand
{
    private static readonly string ScalingShapesText = string.Join(", ", BenchRunner.ScalingShapes.Select(s => $"{s.Compute}c+{s.Storage}s"));

    public static Command Build(CliContext cli)
    {
        var quick = new Option<bool>("--quick") { Description = "A short run (about 2 minutes): 3 s per job, no sequential read, baselines run only the jobs the targets compare with" };
        var compute = new Option<int>("--compute") { Description = "Compute silos in the bench cluster (fio uses compute-1; compute-2 serves the peer-read job)", DefaultValueFactory = _ => 2 };
        var storage = new Option<int>("--storage") { Description = "Storage silos in the bench cluster", DefaultValueFactory = _ => 2 };
        var runtime = new Option<int?>("--runtime") { Description = $"Seconds per fio job (1-{BenchOptions.MaxRuntimeSeconds}; default 10, or 3 with --quick)" };
        var nvram = new Option<string>("--nvram-mode") { Description = "fsync (durable log, default) or memory (log in /dev/shm: shows what fdatasync costs)", DefaultValueFactory = _ => "fsync" };
        nvram.AcceptOnlyFromAmong("fsync", "memory");
        var logCap = new Option<int>("--log-bandwidth-mb") { Description = "Cap each storage silo's log writes at this many MB/s (0: no cap), to show a storage-bound cluster on one machine", DefaultValueFactory = _ => 0 };
        var repeat = new Option<int>("--repeat") { Description = $"Run every job this many times (1-{BenchOptions.MaxRepeat}) and report the run with the median IOPS; the default run takes about 5 minutes more per extra run", DefaultValueFactory = _ => 1 };
        var scaling = new Option<bool>("--scaling") { Description = $"Scaling run instead: 4 KiB random jobs on fresh clusters of {ScalingShapesText}, fio on every compute silo, no baselines" };
        var command = new Command("bench", "Benchmark a fresh local cluster with fio over NBD against nbdkit, qemu-nbd and the raw disk") { quick, compute, storage, runtime, nvram, logCap, repeat, scaling };
        command.SetAction(async (parse, ct) =>
        {
            var options = new BenchOptions(
                parse.GetValue(quick), parse.GetValue(compute), parse.GetValue(storage), parse.GetValue(runtime), parse.GetValue(nvram)!, parse.GetValue(logCap), parse.GetValue(scaling), parse.GetValue(repeat));
            if (options.Check() is { } problem)
            {
                throw new UsageException(problem);
            }

            if (options.Scaling && (parse.GetResult(compute) is { Implicit: false } || parse.GetResult(storage) is { Implicit: false }))
            {
                throw new UsageException($"--scaling runs its own cluster shapes ({ScalingShapesText}); leave out --compute and --storage");
            }

            if (options.Scaling && options.Repeat > 1)
            {
                throw new UsageException("--repeat applies to the comparison run, not to --scaling");
            }

            var root = SiloBinaries.FindRepositoryRoot();
            var line = "./converge " + string.Join(' ', parse.Tokens.Select(t => t.Value));
            var runner = new BenchRunner(root, options, line, cli.Output);
            BenchRun run;
            try
            {
                if (options.Scaling)
                {
                    var scaled = await runner.RunScalingAsync(ct);
                    cli.Output.WriteLine();
                    cli.Output.Write(BenchReport.Markdown(scaled));
                    cli.Output.WriteLine($"bench: appended to {Path.Combine(root, "BENCHMARKS.md")}; JSON in {BenchReport.Save(scaled, root)}");
                    return ConvergeCli.ExitOk;
                }

                run = await runner.RunAsync(ct);
            }
            catch (BenchException e)
            {
                throw new ClusterCommandException("bench: " + e.Message);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // The runner's finally blocks have already killed every process it started and removed its directory.
                await cli.Error.WriteLineAsync("converge: bench cancelled; the processes it started are stopped and nothing was recorded");
                return ConvergeCli.ExitFailure;
            }

            cli.Output.WriteLine();
            cli.Output.Write(BenchReport.Markdown(run));
            var json = BenchReport.Save(run, root);
            cli.Output.WriteLine($"bench: appended to {Path.Combine(root, "BENCHMARKS.md")}; JSON in {json}");
            return ConvergeCli.ExitOk;
        });
        return command;
    }
}
