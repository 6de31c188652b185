using System.CommandLine;
using Converge.Client.Local;
using Converge.Cluster;

namespace Converge.Client.Cli;

/// <summary><c>up</c>, <c>down</c>, <c>status</c>, <c>kill</c>, <c>partition</c>, <c>heal</c>, <c>start</c>, <c>scale</c>.</summary>
internal static class ClusterCommands
{
    public static Command Up(CliContext cli)
    {
        var compute = CountOption("--compute", "Compute silos to run", 2);
        var storage = CountOption("--storage", "Storage silos to run", 3);
        var postgres = new Option<bool>("--postgres") { Description = "Keep metadata and membership in a private PostgreSQL server (cluster mode)" };
        var nvram = new Option<string>("--nvram-mode") { Description = "fsync (durable, default) or memory (log in /dev/shm: survives a process kill, not a machine loss)", DefaultValueFactory = _ => "fsync" };
        nvram.AcceptOnlyFromAmong("fsync", "memory");
        var portOffset = new Option<int>("--port-offset") { Description = "Shift every port (to run a second cluster beside one)", Hidden = true };
        var netns = new Option<bool>("--netns") { Description = "Run every silo in a network namespace of its own (root only), so that 'partition' can cut one off" };
        var command = new Command("up", "Start a local cluster (or the nodes of it that are stopped) and wait until it serves") { compute, storage, postgres, nvram, portOffset, netns };
        command.SetAction(async (parse, ct) =>
        {
            var options = new UpOptions(parse.GetValue(compute), parse.GetValue(storage), parse.GetValue(postgres), parse.GetValue(portOffset), parse.GetValue(nvram)!, parse.GetValue(netns));
            if (options.Storage < 2)
            {
                throw new UsageException("--storage must be at least 2: every write is mirrored on two storage silos");
            }

            if (options.Compute < 1)
            {
                throw new UsageException("--compute must be at least 1");
            }

            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            cli.Output.WriteLine($"converge: starting {options.Storage} storage and {options.Compute} compute silos ({(options.Postgres ? "PostgreSQL" : "SQLite")} metadata) in {cluster.DataDirectory}");
            var layout = await cluster.UpAsync(options, ct);
            PrintEndpoints(cli.Output, layout);
            return ConvergeCli.ExitOk;
        });
        return command;
    }

    public static Command Down(CliContext cli)
    {
        var command = new Command("down", "Stop every silo of the local cluster (data is kept)");
        command.SetAction(async (parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            await cluster.DownAsync();
            cli.Output.WriteLine("converge: cluster stopped");
            return ConvergeCli.ExitOk;
        });
        return command;
    }

    public static Command Status(CliContext cli, string name, string description)
    {
        var command = new Command(name, description);
        command.SetAction(async (parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var nodes = await cluster.StatusAsync(ct);
            var layout = cluster.Layout!;
            cli.Output.WriteLine($"cluster {layout.ClusterId}: {layout.Mode} metadata, NVRAM {layout.NvramMode}, data in {cluster.DataDirectory}");
            if (layout.Mode == "sqlite")
            {
                cli.Output.WriteLine($"primary silo: {layout.Primary.Name} (embedded mode: the cluster needs it; fault drills must spare it)");
            }

            cli.Output.WriteLine($"{"NODE",-12} {"ROLE",-8} {"PROCESS",-16} {"MEMBERSHIP",-12} {"SILO",6} {"GATEWAY",8} {"HTTP",6} {"NBD",6}");
            foreach (var status in nodes)
            {
                var n = status.Node;
                var process = status.ProcessRunning ? $"running {n.Pid}" : "stopped";
                var nbd = n.NbdPort == 0 ? "-" : n.NbdPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
                cli.Output.WriteLine($"{n.Name,-12} {n.Role,-8} {process,-16} {status.Membership,-12} {n.SiloPort,6} {n.GatewayPort,8} {n.HttpPort,6} {nbd,6}");
            }

            await PrintPlacementHealthAsync(cli, cluster, ct);
            return ConvergeCli.ExitOk;
        });
        return command;
    }

    public static Command Kill(CliContext cli)
    {
        var node = new Argument<string>("node") { Description = "Node to SIGKILL, e.g. storage-2" };
        var command = new Command("kill", "SIGKILL one silo (for fault drills)") { node };
        command.SetAction((parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var killed = cluster.Kill(parse.GetValue(node)!);
            cli.Output.WriteLine($"converge: killed {killed.Name}");
            return Task.FromResult(ConvergeCli.ExitOk);
        });
        return command;
    }

    public static Command Partition(CliContext cli)
    {
        var node = new Argument<string>("node") { Description = "Node to cut off, e.g. storage-2" };
        var command = new Command("partition", "Cut one silo off the network: its traffic is dropped both ways (a cluster started with --netns)") { node };
        command.SetAction((parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var cut = cluster.Partition(parse.GetValue(node)!);
            cli.Output.WriteLine($"converge: {cut.Name} cut off; 'converge heal {cut.Name}' joins it again");
            return Task.FromResult(ConvergeCli.ExitOk);
        });
        return command;
    }

    public static Command Heal(CliContext cli)
    {
        var node = new Argument<string>("node") { Description = "Node to join to the network again, e.g. storage-2" };
        var command = new Command("heal", "Join a silo cut off by 'partition' to the network again (if it was declared dead meanwhile it stops itself: 'start' it)") { node };
        command.SetAction((parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var healed = cluster.Heal(parse.GetValue(node)!);
            cli.Output.WriteLine($"converge: {healed.Name} joined to the network again");
            return Task.FromResult(ConvergeCli.ExitOk);
        });
        return command;
    }

    public static Command Start(CliContext cli)
    {
        var node = new Argument<string>("node") { Description = "Node to start, e.g. storage-2" };
        var command = new Command("start", "Start one stopped silo and wait until it joins") { node };
        command.SetAction(async (parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var started = await cluster.StartNodeAsync(parse.GetValue(node)!, ct);
            cli.Output.WriteLine($"converge: {started.Name} joined");
            return ConvergeCli.ExitOk;
        });
        return command;
    }

    public static Command Scale(CliContext cli)
    {
        var compute = CountOption("--compute", "Compute silos wanted", null);
        var storage = CountOption("--storage", "Storage silos wanted", null);
        var command = new Command("scale", "Add or remove compute silos, add storage silos") { compute, storage };
        command.SetAction(async (parse, ct) =>
        {
            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var layout = cluster.Layout ?? throw new ClusterCommandException($"no cluster in {cluster.DataDirectory}; start one with 'converge up'");
            var wantCompute = parse.GetResult(compute) is null ? layout.OfRole(NodeRoles.Compute).Count() : parse.GetValue(compute);
            var wantStorage = parse.GetResult(storage) is null ? layout.OfRole(NodeRoles.Storage).Count() : parse.GetValue(storage);
            if (wantCompute < 1)
            {
                throw new UsageException("--compute must be at least 1");
            }

            await cluster.ScaleAsync(wantCompute, wantStorage, ct);
            PrintEndpoints(cli.Output, cluster.Layout!);
            return ConvergeCli.ExitOk;
        });
        return command;
    }

    /// <summary>One line on placement groups (degraded, re-replication progress); skipped when the cluster does not answer.</summary>
    private static async Task PrintPlacementHealthAsync(CliContext cli, LocalCluster cluster, CancellationToken ct)
    {
        try
        {
            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(5), ct);
            var status = await client.Cluster.GetGrain<Converge.Storage.IStorageRosterGrain>(0).GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(10), ct);
            var removed = status.RemovedNodes.Length == 0 ? "none" : string.Join(", ", status.RemovedNodes);
            cli.Output.WriteLine($"placement groups: {status.DegradedGroups} degraded, {status.LostGroups} lost; removed nodes: {removed}");
            if (status.Running || status.GroupsToCopy > 0)
            {
                cli.Output.WriteLine(NodeCommands.Progress(status));
            }
        }
        catch (Exception e) when (e is ClusterUnreachableException or Orleans.Runtime.OrleansException or TimeoutException or InvalidOperationException)
        {
            cli.Output.WriteLine($"placement groups: unknown ({e.Message})");
        }
    }

    private static Option<int> CountOption(string name, string description, int? defaultValue)
    {
        var option = new Option<int>(name) { Description = description };
        if (defaultValue is { } d)
        {
            option.DefaultValueFactory = _ => d;
        }

        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 0 or > 32)
            {
                result.AddError($"{name} must be from 0 to 32");
            }
        });
        return option;
    }

    private static void PrintEndpoints(TextWriter output, ClusterLayout layout)
    {
        output.WriteLine("converge: cluster is serving");
        foreach (var node in layout.Nodes.OrderBy(n => n.Role).ThenBy(n => n.Index))
        {
            var nbd = node.NbdPort != 0 ? $"  nbd://{node.Address}:{node.NbdPort}/VOLUME" : "";
            output.WriteLine($"  {node.Name,-10} gateway {node.Address}:{node.GatewayPort}  metrics http://{node.Address}:{node.HttpPort}/metrics{nbd}");
        }
    }
}
