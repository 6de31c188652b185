using Converge.Client;
using Converge.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Xunit;

namespace Converge.Tests.Cluster;

/// <summary>
/// The timeouts silos and clients are tuned with reach the options the Orleans runtime reads. Settings made on the base
/// options type (<see cref="MessagingOptions"/>) build and run but are never applied, which left every call at
/// Orleans' 30 s default.
/// </summary>
public sealed class MessagingTimeoutTests
{
    [Fact]
    public void Silos_WaitTheTunedTime_ForGrainCallsAndSystemCalls()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering();
            ClusterTuning.Apply(silo);
        });
        using var host = builder.Build();

        var options = host.Services.GetRequiredService<IOptions<SiloMessagingOptions>>().Value;
        Assert.Equal(ClusterTuning.ResponseTimeout, options.ResponseTimeout);
        Assert.Equal(ClusterTuning.ResponseTimeout, options.SystemResponseTimeout);
        Assert.Equal(ClusterTuning.ResponseTimeout, host.Services.GetRequiredService<IOptions<MessagingOptions>>().Value.ResponseTimeout);
        Assert.Equal(ClusterTuning.ConnectTimeout, host.Services.GetRequiredService<IOptions<ConnectionOptions>>().Value.OpenConnectionTimeout);
        Assert.True(ClusterTuning.ResponseTimeout < TimeSpan.FromSeconds(30), "the tuned timeout is shorter than Orleans' default");
    }

    [Fact]
    public void Clients_WaitTheTunedTime()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.UseOrleansClient(client =>
        {
            client.UseLocalhostClustering();
            ConvergeClient.Tune(client);
        });
        using var host = builder.Build();

        Assert.Equal(ConvergeClient.ResponseTimeout, host.Services.GetRequiredService<IOptions<ClientMessagingOptions>>().Value.ResponseTimeout);
        Assert.Equal(ConvergeClient.ResponseTimeout, host.Services.GetRequiredService<IOptions<MessagingOptions>>().Value.ResponseTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2), host.Services.GetRequiredService<IOptions<ConnectionOptions>>().Value.OpenConnectionTimeout);
    }
}
