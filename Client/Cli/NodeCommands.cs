using System.CommandLine;
using System.Globalization;
using Converge.Client.Local;
using Converge.Storage;

namespace Converge.Client.Cli;

/// <summary><c>node remove NODE</c> (alias <c>decommission</c>): remove a storage node for good and restore two replicas.</summary>
internal static class NodeCommands
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    public static Command Build(CliContext cli)
    {
        var node = new Command("node", "Manage storage nodes");
        node.Subcommands.Add(Remove(cli));
        return node;
    }

    private static Command Remove(CliContext cli)
    {
        var name = new Argument<string>("node") { Description = "Storage node removed for good, e.g. storage-3" };
        var noWait = new Option<bool>("--no-wait") { Description = "Return once re-replication has started instead of following it" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to follow re-replication before giving up (it continues in the cluster)", DefaultValueFactory = _ => 3600 };
        var command = new Command("remove", "Remove a storage node for good: its placement groups get new replicas copied from the survivors, its log segments are destaged from their other mirror, and it is fenced if it comes back")
        {
            name, noWait, timeout,
        };
        command.Aliases.Add("decommission");
        command.SetAction(async (parse, ct) =>
        {
            var node = parse.GetValue(name)!;
            var seconds = parse.GetValue(timeout);
            if (seconds < 1)
            {
                throw new UsageException("--timeout must be at least 1 second");
            }

            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(10), ct);
            var roster = client.Cluster.GetGrain<IStorageRosterGrain>(0);
            var result = await roster.RemoveNodeAsync(node);
            if (!result.Ok)
            {
                throw new ClusterCommandException(result.Message);
            }

            cli.Output.WriteLine($"converge: {result.Message}");
            if (parse.GetValue(noWait))
            {
                return ConvergeCli.ExitOk;
            }

            var status = await FollowAsync(cli, roster, TimeSpan.FromSeconds(seconds), ct);
            return status.GroupsFailed == 0 && status.LostGroups == 0 && !status.Running ? ConvergeCli.ExitOk : ConvergeCli.ExitFailure;
        });
        return command;
    }

    /// <summary>Prints progress until re-replication ends (or the timeout passes); returns the last status.</summary>
    public static async Task<RereplicationStatus> FollowAsync(CliContext cli, IStorageRosterGrain roster, TimeSpan timeout, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        RereplicationStatus status;
        string? last = null;
        while (true)
        {
            status = await roster.GetStatusAsync();
            var line = Progress(status);
            if (line != last)
            {
                cli.Output.WriteLine(line);
                last = line;
            }

            if (!status.Running || clock.Elapsed > timeout)
            {
                break;
            }

            await Task.Delay(PollInterval, ct);
        }

        if (status.Running)
        {
            cli.Error.WriteLine($"converge: re-replication still running after {timeout.TotalSeconds:F0} s; follow it with 'converge status'");
        }
        else if (status.GroupsFailed > 0 || status.LostGroups > 0)
        {
            cli.Error.WriteLine($"converge: re-replication ended with {status.GroupsFailed} groups failed, {status.LostGroups} lost: {status.LastError}");
        }
        else
        {
            cli.Output.WriteLine($"converge: re-replication done: {status.GroupsCopied} groups, {status.BytesCopied / 1e6:F1} MB in {status.ElapsedMs / 1000:F1} s ({status.MegabytesPerSecond:F1} MB/s); {status.DegradedGroups} groups degraded");
        }

        return status;
    }

    public static string Progress(RereplicationStatus s) => string.Create(CultureInfo.InvariantCulture,
        $"re-replication: {s.GroupsCopied}/{s.GroupsToCopy} groups copied, {s.BytesCopied / 1e6:F1} MB, {s.MegabytesPerSecond:F1} MB/s, {s.GroupsFailed} failed, {s.DegradedGroups} degraded{(s.Running ? "" : " (idle)")}");
}
