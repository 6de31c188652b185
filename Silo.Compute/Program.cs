using Converge.Cluster;
using Converge.Grains.Cache;
using Converge.Hosting;
using Converge.SiloCompute.Nbd;
using Microsoft.Extensions.DependencyInjection;

return await SiloHost.RunAsync(args, NodeRoles.Compute, (builder, settings) =>
{
    // 64 Ki blocks of 4 KiB = 256 MiB of RAM cache per compute node.
    builder.Services.AddSingleton(new BlockCache(capacityBlocks: 64 * 1024));
    builder.Services.AddNbdServer();
});
