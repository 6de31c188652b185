using Microsoft.Extensions.DependencyInjection;
using Orleans.Placement;

namespace Converge.Grains.Placement;

public static class PlacementRegistration
{
    /// <summary>
    /// Registers Converge's role filter and node pinning. Placement runs on whichever silo receives the call,
    /// so every silo (compute and storage alike) must call this.
    /// </summary>
    public static ISiloBuilder AddConvergePlacement(this ISiloBuilder builder)
    {
        builder.ConfigureServices(services =>
        {
            services.AddPlacementFilter<RolePlacementFilterStrategy, RolePlacementFilterDirector>(ServiceLifetime.Transient);
            services.AddPlacementFilter<ControlPlanePlacementFilterStrategy, ControlPlanePlacementFilterDirector>(ServiceLifetime.Transient);
        });
        builder.AddPlacementDirector<NodePinnedPlacement, NodePinnedPlacementDirector>();
        return builder;
    }
}
