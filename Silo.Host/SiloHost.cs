using System.Net;
using System.Net.Sockets;
using Converge.Cluster;
using Converge.Grains.Cluster;
using Converge.Grains.DataChannel;
using Converge.Grains.Placement;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Converge.Hosting;

/// <summary>
/// The hosting shared by compute and storage silos: settings, clustering, metadata storage, silo metadata
/// (role and node name) and placement. Role-specific services are added by <paramref name="configureRole"/>.
/// </summary>
public static class SiloHost
{
    public static async Task<int> RunAsync(string[] args, string role, Action<HostApplicationBuilder, SiloSettings>? configureRole = null)
    {
        // No appsettings reload: the default watches the content root recursively, and with the content root at the
        // working directory that covered the data directory, so every log and extent write woke a watcher thread in
        // every silo (about 15% of the CPU under random writes). The content root is the binaries' directory.
        var hostConfiguration = new ConfigurationManager();
        hostConfiguration.AddInMemoryCollection([new KeyValuePair<string, string?>("hostBuilder:reloadConfigOnChange", "false")]);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            Args = args,
            DisableDefaults = false,
            ContentRootPath = AppContext.BaseDirectory,
            Configuration = hostConfiguration,
        });
        builder.Configuration.AddEnvironmentVariables("CONVERGE_");
        SiloSettings settings;
        try
        {
            settings = SiloSettings.Parse(builder.Configuration, role);
            Directory.CreateDirectory(settings.DataDirectory);
        }
        catch (SettingsException e)
        {
            await Console.Error.WriteLineAsync($"converge {role} silo: {e.Message}");
            return 2;
        }

        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.AddFilter("Orleans", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        builder.Logging.AddFilter("Polly", LogLevel.Warning);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(new LocalNode(settings.Node, role, settings.DataDirectory));
        builder.Services.AddSingleton<ClusterView>();
        builder.Services.AddMembershipLog();
        builder.Services.AddConvergeMetrics(settings);

        await MetadataSetup.PrepareAsync(settings, CancellationToken.None);

        // The data channel's listener is bound first, so that its port (any free one by default) can be published.
        DataChannelListener? dataListener = null;
        if (role == NodeRoles.Storage)
        {
            try
            {
                dataListener = DataChannelListener.Bind(settings.Address, settings.DataPort);
            }
            catch (SocketException e)
            {
                await Console.Error.WriteLineAsync($"converge {role} silo: cannot listen on {settings.Address}:{settings.DataPort} for the data channel: {e.Message}");
                return 2;
            }

            builder.Services.AddDataChannelServer(dataListener);
        }

        // Compute nodes append through it; storage nodes' destage applies to other storage nodes through it.
        builder.Services.AddDataChannelClient();

        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = settings.ClusterId;
                o.ServiceId = "converge";
            });
            silo.Configure<SiloOptions>(o => o.SiloName = settings.Node);
            silo.ConfigureEndpoints(settings.Address, settings.SiloPort, settings.GatewayPort, listenOnAnyHostAddress: false);
            if (!settings.UsesPostgres)
            {
                silo.UseDevelopmentClustering(new IPEndPoint(settings.PrimaryAddress, settings.PrimarySiloPort));
            }

            MetadataSetup.Configure(silo, settings);
            var metadata = new Dictionary<string, string>
            {
                [NodeRoles.RoleKey] = role,
                [NodeRoles.NodeKey] = settings.Node,
            };
            if (dataListener is not null)
            {
                metadata[NodeRoles.DataEndpointKey] = dataListener.EndPoint.ToString();
            }

            if (!settings.UsesPostgres && settings.PrimarySiloPort == settings.SiloPort && settings.PrimaryAddress.Equals(settings.Address))
            {
                metadata[NodeRoles.PrimaryKey] = "true";
            }

            silo.UseSiloMetadata(metadata);
            silo.AddConvergePlacement();
            ClusterTuning.Apply(silo);
        });

        configureRole?.Invoke(builder, settings);
        using var host = builder.Build();
        await host.RunAsync();
        return 0;
    }
}
