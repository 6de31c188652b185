using Converge.Cluster;
using Converge.Hosting;

return await SiloHost.RunAsync(args, NodeRoles.Compute);
