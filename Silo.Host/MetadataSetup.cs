namespace Converge.Hosting;

/// <summary>Configures where control-plane state lives (placeholder: in-memory until the ADO.NET setup lands).</summary>
public static class MetadataSetup
{
    public static Task PrepareAsync(SiloSettings settings, CancellationToken cancellationToken) => Task.CompletedTask;

    public static void Configure(ISiloBuilder silo, SiloSettings settings) =>
        silo.AddMemoryGrainStorage(Converge.Grains.MetadataStorage.Name);
}
