using System.CommandLine;
using Converge.Volumes;

namespace Converge.Client.Cli;

/// <summary><c>volume create|ls|rm|resize|attach|detach</c>.</summary>
internal static class VolumeCommands
{
    public static Command Build(CliContext cli)
    {
        var volume = new Command("volume", "Create, list, resize, attach and remove volumes");
        volume.Subcommands.Add(Create(cli));
        volume.Subcommands.Add(List(cli));
        volume.Subcommands.Add(Remove(cli));
        volume.Subcommands.Add(Resize(cli));
        volume.Subcommands.Add(Attach(cli));
        volume.Subcommands.Add(Detach(cli));
        return volume;
    }

    private static Argument<string> NameArgument() => new("name") { Description = "Volume name: 1-64 of a-z 0-9 . _ -" };

    private static Option<string> SizeOption(bool required) => new("--size")
    {
        Description = "Size with a binary unit: 512M, 10G, 1T (or bytes)",
        Required = required,
    };

    private static Command Create(CliContext cli)
    {
        var name = NameArgument();
        var size = SizeOption(required: true);
        var blockSize = new Option<int>("--block-size") { Description = "Block size in bytes (power of two, 512-65536)", DefaultValueFactory = _ => VolumeRules.DefaultBlockSizeBytes };
        var command = new Command("create", "Create a volume") { name, size, blockSize };
        command.SetAction(async (parse, ct) =>
        {
            var volumeName = CheckedName(parse.GetValue(name));
            var bs = parse.GetValue(blockSize);
            if (VolumeRules.CheckBlockSize(bs) is { } bsError)
            {
                throw new UsageException(bsError);
            }

            var bytes = CheckedSize(parse.GetValue(size), bs);
            return await WithClientAsync(parse, cli, ct, async client =>
            {
                var result = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).CreateAsync(volumeName, bytes, bs);
                return Report(cli, result, v => $"created volume {v.Name}: {FormatSize(v.SizeBytes)}, block size {v.BlockSizeBytes}, id {v.VolumeId}");
            });
        });
        return command;
    }

    private static Command List(CliContext cli)
    {
        var command = new Command("ls", "List volumes");
        command.SetAction(async (parse, ct) => await WithClientAsync(parse, cli, ct, async client =>
        {
            var volumes = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).ListAsync();
            cli.Output.WriteLine($"{"NAME",-24} {"SIZE",10} {"BLOCK",6} {"ATTACHED",-12} {"EPOCH",6}  ID");
            foreach (var v in volumes)
            {
                cli.Output.WriteLine($"{v.Name,-24} {FormatSize(v.SizeBytes),10} {v.BlockSizeBytes,6} {v.AttachedNode ?? "-",-12} {v.Epoch,6}  {v.VolumeId}");
            }

            return ConvergeCli.ExitOk;
        }));
        return command;
    }

    private static Command Remove(CliContext cli)
    {
        var name = NameArgument();
        var force = new Option<bool>("--force") { Description = "Remove even while attached" };
        var command = new Command("rm", "Remove a volume and its data") { name, force };
        command.SetAction(async (parse, ct) =>
        {
            var volumeName = CheckedName(parse.GetValue(name));
            return await WithClientAsync(parse, cli, ct, async client =>
            {
                var result = await client.Cluster.GetGrain<IVolumeCatalogGrain>(0).RemoveAsync(volumeName, parse.GetValue(force));
                return Report(cli, result, v => $"removed volume {v.Name}");
            });
        });
        return command;
    }

    private static Command Resize(CliContext cli)
    {
        var name = NameArgument();
        var size = SizeOption(required: true);
        var command = new Command("resize", "Grow a volume") { name, size };
        command.SetAction(async (parse, ct) =>
        {
            var volumeName = CheckedName(parse.GetValue(name));
            var bytes = VolumeRules.ParseSize(parse.GetValue(size)) ?? throw new UsageException($"--size '{parse.GetValue(size)}' is not a size such as 512M, 10G or 1T");
            return await WithClientAsync(parse, cli, ct, async client =>
            {
                var result = await client.Cluster.GetGrain<IVolumeGrain>(volumeName).ResizeAsync(bytes);
                return Report(cli, result, v => $"volume {v.Name} is now {FormatSize(v.SizeBytes)}");
            });
        });
        return command;
    }

    private static Command Attach(CliContext cli)
    {
        var name = NameArgument();
        var node = new Option<string>("--node") { Description = "Compute node to attach to, e.g. compute-2", Required = true };
        var force = new Option<bool>("--force") { Description = "Take over even while the holder's lease runs (only for a holder known dead)" };
        var command = new Command("attach", "Attach a volume to a compute node (a new epoch fences the previous holder)") { name, node, force };
        command.SetAction(async (parse, ct) =>
        {
            var volumeName = CheckedName(parse.GetValue(name));
            var nodeName = parse.GetValue(node)!;
            if (!nodeName.StartsWith(Converge.Cluster.NodeRoles.Compute + "-", StringComparison.Ordinal))
            {
                throw new UsageException($"--node '{nodeName}' is not a compute node (compute-N)");
            }

            return await WithClientAsync(parse, cli, ct, async client =>
            {
                var result = await client.Cluster.GetGrain<IVolumeGrain>(volumeName).AttachAsync(nodeName, parse.GetValue(force));
                if (!result.Ok)
                {
                    await cli.Error.WriteLineAsync($"converge: {result.Message}");
                    return ConvergeCli.ExitFailure;
                }

                cli.Output.WriteLine($"attached {volumeName} to {nodeName} at epoch {result.Attachment!.Epoch}");
                return ConvergeCli.ExitOk;
            });
        });
        return command;
    }

    private static Command Detach(CliContext cli)
    {
        var name = NameArgument();
        var command = new Command("detach", "Detach a volume from its compute node") { name };
        command.SetAction(async (parse, ct) =>
        {
            var volumeName = CheckedName(parse.GetValue(name));
            return await WithClientAsync(parse, cli, ct, async client =>
            {
                var grain = client.Cluster.GetGrain<IVolumeGrain>(volumeName);
                var current = await grain.GetAsync();
                if (!current.Ok)
                {
                    return Report(cli, current, _ => "");
                }

                if (current.Volume!.AttachedNode is not { } holder)
                {
                    cli.Output.WriteLine($"volume {volumeName} is not attached");
                    return ConvergeCli.ExitOk;
                }

                var result = await grain.DetachAsync(holder, current.Volume.Epoch);
                return Report(cli, result, v => $"detached {v.Name} from {holder}");
            });
        });
        return command;
    }

    private static string CheckedName(string? name) =>
        VolumeRules.CheckName(name) is { } error ? throw new UsageException(error) : name!;

    private static long CheckedSize(string? text, int blockSizeBytes)
    {
        var bytes = VolumeRules.ParseSize(text) ?? throw new UsageException($"--size '{text}' is not a size such as 512M, 10G or 1T");
        return VolumeRules.CheckSize(bytes, blockSizeBytes) is { } error ? throw new UsageException(error) : bytes;
    }

    private static async Task<int> WithClientAsync(ParseResult parse, CliContext cli, CancellationToken ct, Func<ConvergeClient, Task<int>> action)
    {
        var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
        await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(10), ct);
        return await action(client);
    }

    private static int Report(CliContext cli, VolumeResult result, Func<VolumeInfo, string> success)
    {
        if (!result.Ok)
        {
            cli.Error.WriteLine($"converge: {result.Message}");
            return ConvergeCli.ExitFailure;
        }

        cli.Output.WriteLine(success(result.Volume!));
        return ConvergeCli.ExitOk;
    }

    internal static string FormatSize(long bytes) => bytes switch
    {
        >= 1L << 40 when bytes % (1L << 40) == 0 => $"{bytes >> 40}T",
        >= 1L << 30 when bytes % (1L << 30) == 0 => $"{bytes >> 30}G",
        >= 1L << 20 when bytes % (1L << 20) == 0 => $"{bytes >> 20}M",
        _ => $"{bytes}B",
    };
}
