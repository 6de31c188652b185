using System.CommandLine;
using System.Text.Json;
using Converge.Client.Local;
using Converge.Cluster;
using Converge.DataPath;
using Converge.Storage;
using Converge.Volumes;

namespace Converge.Client.Cli;

/// <summary><c>stats</c> (per-tier read counters of each compute node, log counters of each storage node) and <c>cache drop</c>.</summary>
internal static class StatsCommands
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static Command Stats(CliContext cli)
    {
        var node = new Option<string>("--node") { Description = "Only this node, e.g. compute-2" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var command = new Command("stats", "Per-tier read counters of each compute node (RAM, flash, peer, log, extents) and storage log counters") { node, json };
        command.SetAction(async (parse, ct) =>
        {
            var only = parse.GetValue(node);
            if (only is not null && !IsNodeName(only))
            {
                throw new UsageException($"--node '{only}' is not a node name (compute-N or storage-N)");
            }

            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var layout = cluster.Layout ?? throw new ClusterCommandException($"no cluster in {cluster.DataDirectory}; run 'converge up' first");
            if (only is not null && layout.Find(only) is null)
            {
                throw new UsageException($"--node '{only}' is not a node of this cluster");
            }

            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(10), ct);
            var compute = new List<CacheNodeStats>();
            var storage = new List<StorageLogStats>();
            var failed = false;
            foreach (var n in layout.Nodes.OrderBy(n => n.Role).ThenBy(n => n.Index))
            {
                if (only is not null && n.Name != only)
                {
                    continue;
                }

                try
                {
                    if (n.Role == NodeRoles.Compute)
                    {
                        compute.Add(await client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(n.Name)).GetStatsAsync());
                    }
                    else
                    {
                        var log = await client.Cluster.GetGrain<IStorageNodeGrain>(IStorageNodeGrain.Key(n.Name)).GetLogStatsAsync();
                        storage.Add(new StorageLogStats(n.Name, log.GroupCommits, log.CommittedRecords, log.Fdatasyncs, log.Poisoned, log.Fault));
                    }
                }
                catch (Exception e) when (e is OrleansException or TimeoutException)
                {
                    await cli.Error.WriteLineAsync($"converge: {n.Name} did not answer: {e.Message}");
                    failed = true;
                }
            }

            if (parse.GetValue(json))
            {
                cli.Output.WriteLine(JsonSerializer.Serialize(new { Compute = compute, Storage = storage }, JsonOptions));
            }
            else
            {
                PrintTable(cli.Output, compute, storage);
            }

            return failed ? ConvergeCli.ExitFailure : ConvergeCli.ExitOk;
        });
        return command;
    }

    public static Command Cache(CliContext cli)
    {
        var cache = new Command("cache", "Compute node block caches");
        var name = new Argument<string>("name") { Description = "Volume name" };
        var node = new Option<string>("--node") { Description = "Only this compute node (default: every compute node)" };
        var drop = new Command("drop", "Drop a volume's blocks from the RAM and flash caches of compute nodes (data stays in storage)") { name, node };
        drop.SetAction(async (parse, ct) =>
        {
            var volumeName = parse.GetValue(name);
            if (VolumeRules.CheckName(volumeName) is { } error)
            {
                throw new UsageException(error);
            }

            var only = parse.GetValue(node);
            if (only is not null && !only.StartsWith(NodeRoles.Compute + "-", StringComparison.Ordinal))
            {
                throw new UsageException($"--node '{only}' is not a compute node (compute-N)");
            }

            var cluster = ConvergeCli.OpenCluster(parse, cli.Output);
            var layout = cluster.Layout ?? throw new ClusterCommandException($"no cluster in {cluster.DataDirectory}; run 'converge up' first");
            await using var client = await cluster.ConnectAsync(TimeSpan.FromSeconds(10), ct);
            var volume = await client.Cluster.GetGrain<IVolumeGrain>(volumeName!).GetAsync();
            if (!volume.Ok)
            {
                await cli.Error.WriteLineAsync($"converge: {volume.Message}");
                return ConvergeCli.ExitFailure;
            }

            var exit = ConvergeCli.ExitOk;
            foreach (var n in layout.OfRole(NodeRoles.Compute))
            {
                if (only is not null && n.Name != only)
                {
                    continue;
                }

                try
                {
                    await client.Cluster.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(n.Name)).EvictVolumeAsync(volume.Volume!.VolumeId);
                    cli.Output.WriteLine($"dropped {volumeName} from the cache of {n.Name}");
                }
                catch (Exception e) when (e is OrleansException or TimeoutException)
                {
                    await cli.Error.WriteLineAsync($"converge: {n.Name} did not answer: {e.Message}");
                    exit = ConvergeCli.ExitFailure;
                }
            }

            return exit;
        });
        cache.Subcommands.Add(drop);
        return cache;
    }

    private static bool IsNodeName(string name) =>
        name.StartsWith(NodeRoles.Compute + "-", StringComparison.Ordinal) || name.StartsWith(NodeRoles.Storage + "-", StringComparison.Ordinal);

    private static void PrintTable(TextWriter output, List<CacheNodeStats> compute, List<StorageLogStats> storage)
    {
        foreach (var s in compute)
        {
            output.WriteLine($"{s.Node}: cache RAM {Mib(s.RamBytes)}, flash {Mib(s.FlashBytes)}; misses {s.Misses}, evictions RAM {s.RamEvictions} flash {s.FlashEvictions}, zero reads {s.ZeroReads}");
            output.WriteLine($"  {"tier",-7} {"blocks",12} {"bytes",14} {"calls/hits",12} {"p50 us",10} {"p99 us",10}");
            Row(output, "ram", s.RamHits, s.RamHitBytes, s.RamLatency);
            Row(output, "flash", s.FlashHits, s.FlashHitBytes, s.FlashLatency);
            Row(output, "peer", s.PeerHits, s.PeerHitBytes, s.PeerLatency);
            Row(output, "log", s.LogReads, s.LogReadBytes, s.LogLatency);
            Row(output, "extent", s.ExtentReads, s.ExtentReadBytes, s.ExtentLatency);
            output.WriteLine($"  peer calls {s.PeerCalls} (failed {s.PeerFailures}), blocks rejected {s.PeerRejected}, blocks served to peers {s.PeerServed}");
            output.WriteLine($"  NBD reads answered from RAM without the controller: {s.DirectReads}");
        }

        foreach (var s in storage)
        {
            var records = s.GroupCommits == 0 ? 0 : (double)s.CommittedRecords / s.GroupCommits;
            output.WriteLine($"{s.Node}: log group commits {s.GroupCommits}, records {s.CommittedRecords} ({records:0.##} per commit), fdatasyncs {s.Fdatasyncs}{(s.Poisoned ? $", POISONED: {s.Fault}" : "")}");
        }
    }

    private static void Row(TextWriter output, string tier, long blocks, long bytes, TierLatency latency) =>
        output.WriteLine($"  {tier,-7} {blocks,12} {bytes,14} {latency.Samples,12} {latency.P50Us,10:0.#} {latency.P99Us,10:0.#}");

    private sealed record StorageLogStats(string Node, long GroupCommits, long CommittedRecords, long Fdatasyncs, bool Poisoned, string? Fault);

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):0.#} MiB";
}
