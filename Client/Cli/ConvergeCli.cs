using System.CommandLine;
using Converge.Client.Local;

namespace Converge.Client.Cli;

/// <summary>
/// The <c>converge</c> command line. Exit codes: 0 success, 1 the command failed (cluster or volume error),
/// 2 usage error (bad arguments). Every refusal prints one clear line on standard error and changes nothing.
/// </summary>
public static partial class ConvergeCli
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    internal static readonly Option<string> DataOption = new("--data")
    {
        Description = "Directory holding the local cluster's state, logs and node data (default: .converge in the source tree)",
        Recursive = true,
    };

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var root = new RootCommand("Converge: a distributed block storage cluster on Orleans");
        root.Options.Add(DataOption);
        var context = new CliContext(output, error);
        root.Subcommands.Add(ClusterCommands.Up(context));
        root.Subcommands.Add(ClusterCommands.Down(context));
        root.Subcommands.Add(ClusterCommands.Status(context, "status", "Show every node, its role, process and membership state"));
        root.Subcommands.Add(ClusterCommands.Status(context, "nodes", "Same as status"));
        root.Subcommands.Add(ClusterCommands.Kill(context));
        root.Subcommands.Add(ClusterCommands.Partition(context));
        root.Subcommands.Add(ClusterCommands.Heal(context));
        root.Subcommands.Add(ClusterCommands.Start(context));
        root.Subcommands.Add(ClusterCommands.Scale(context));
        root.Subcommands.Add(VolumeCommands.Build(context));
        root.Subcommands.Add(NodeCommands.Build(context));
        root.Subcommands.Add(BenchCommand.Build(context));
        root.Subcommands.Add(StatsCommands.Stats(context));
        root.Subcommands.Add(StatsCommands.Cache(context));
        root.Subcommands.Add(DrillCommand.Build(context));

        var parse = root.Parse(args, new ParserConfiguration());
        if (parse.Errors.Count > 0)
        {
            foreach (var parseError in parse.Errors)
            {
                await error.WriteLineAsync($"converge: {parseError.Message}");
            }

            await error.WriteLineAsync("run 'converge --help' for usage");
            return ExitUsage;
        }

        // Ctrl-C cancels the command's token; the wait lets commands that started processes (bench) kill them by pid.
        var invocation = new InvocationConfiguration
        {
            Output = output,
            Error = error,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = TimeSpan.FromSeconds(30),
        };
        try
        {
            return await parse.InvokeAsync(invocation);
        }
        catch (UsageException e)
        {
            await error.WriteLineAsync($"converge: {e.Message}");
            return ExitUsage;
        }
        catch (Exception e) when (e is ClusterCommandException or ClusterUnreachableException)
        {
            await error.WriteLineAsync($"converge: {e.Message}");
            return ExitFailure;
        }
    }

    internal static LocalCluster OpenCluster(ParseResult parse, TextWriter progress)
    {
        var root = SiloBinaries.FindRepositoryRoot();
        var data = parse.GetValue(DataOption) is { Length: > 0 } d ? d : Path.Combine(root, ".converge");
        return new LocalCluster(root, data, progress);
    }
}

/// <summary>The writers a command prints to.</summary>
internal sealed record CliContext(TextWriter Output, TextWriter Error);

/// <summary>Bad arguments that the parser could not catch (exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);
