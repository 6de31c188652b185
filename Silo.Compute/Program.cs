using System.Diagnostics.Metrics;
using Converge.Cluster;
using Converge.Grains.Cache;
using Converge.Hosting;
using Converge.SiloCompute.Nbd;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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
