using Converge.Cluster;
using Converge.Grains.Destage;
using Converge.Grains.Rereplication;
using Converge.Grains.Segments;
using Converge.Hosting;
using Microsoft.Extensions.DependencyInjection;

return await SiloHost.RunAsync(args, NodeRoles.Storage, (builder, settings) =>
{
    builder.Services.AddStorageNodeLog(settings.DataDirectory, settings.Node, memoryMode: settings.NvramMode == "memory", settings.LogBandwidthMb * 1_000_000L);
    builder.Services.AddDestage();
    builder.Services.AddDeadNodeWatch(settings.AutoRemoveAfter);
});
