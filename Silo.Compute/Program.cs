using System.Diagnostics.Metrics;
using Converge.Cluster;
using Converge.Grains.Cache;
using Converge.Hosting;
using Converge.SiloCompute.Nbd;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Socket continuations run on the socket engine's own thread instead of being queued to a thread-pool worker that must
// be woken first: an NBD request answered from the cache then costs one thread hand-off fewer. Measured with fio over
// NBD (BENCHMARKS.md, 2026-11-29 notes): 4 KiB random reads at queue depth 1 p50 about 65 -> 45 us with this set in
// compute silos only; the queue-depth-32 figures there were taken with it set in every silo. Read once, when the first
// socket is set up, so it is set before anything else runs; an
// operator's own setting (0 turns it off) is kept. What runs inline must not block: the NBD reader, the data channel
// client and Orleans' transport only parse and hand work on.
if (Environment.GetEnvironmentVariable(InlineSocketCompletions) is null)
{
    Environment.SetEnvironmentVariable(InlineSocketCompletions, "1");
}

return await SiloHost.RunAsync(args, NodeRoles.Compute, (builder, settings) =>
{
    // One cache per compute node, shared by every volume controller on it: RAM over a flash file in the data directory.
    builder.Services.AddSingleton(sp => new CacheInstruments(sp.GetService<IMeterFactory>()));
    builder.Services.AddSingleton(sp => new BlockCache(
        new BlockCacheOptions
        {
            RamCapacityBytes = settings.CacheRamMb * 1024L * 1024,
            FlashCapacityBytes = settings.CacheFlashMb * 1024L * 1024,
            FlashDirectory = Path.Combine(settings.DataDirectory, "cache"),
        },
        sp.GetRequiredService<CacheInstruments>(),
        sp.GetRequiredService<ILogger<BlockCache>>()));
    // Lets the NBD gateway answer reads the controllers have proven current in RAM without a grain call.
    builder.Services.AddSingleton<Converge.Grains.Controller.VolumeReadViews>();
    builder.Services.AddNbdServer();
});

internal static partial class Program
{
    private const string InlineSocketCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
}
