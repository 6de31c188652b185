using Converge.Cluster;
using Orleans.Metadata;
using Orleans.Placement;
using Orleans.Runtime.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Converge.Grains.Placement;

/// <summary>Restricts a grain to silos whose published role matches (silo metadata <see cref="NodeRoles.RoleKey"/>).</summary>
public sealed class RolePlacementFilterStrategy : PlacementFilterStrategy
{
    private const string RoleProperty = "role";

    public RolePlacementFilterStrategy()
        : this("")
    {
    }

    public RolePlacementFilterStrategy(string role)
        : base(order: 0)
    {
        Role = role;
    }

    public string Role { get; private set; }

    public override void AdditionalInitialize(GrainProperties properties) =>
        Role = GetPlacementFilterGrainProperty(RoleProperty, properties)
            ?? throw new InvalidOperationException("role placement filter without a role property");

    protected override IEnumerable<KeyValuePair<string, string>> GetAdditionalGrainProperties(
        IServiceProvider services, Type grainClass, GrainType grainType, IReadOnlyDictionary<string, string> existingProperties)
    {
        yield return new KeyValuePair<string, string>(RoleProperty, Role);
    }
}

/// <summary>Places the grain only on silos of the given role (<c>compute</c> or <c>storage</c>).</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class RolePlacementAttribute(string role) : PlacementFilterAttribute(new RolePlacementFilterStrategy(role));

/// <summary>Keeps the silos whose role metadata equals the strategy's role.</summary>
public sealed class RolePlacementFilterDirector(ISiloMetadataCache metadata) : IPlacementFilterDirector
{
    public IEnumerable<SiloAddress> Filter(PlacementFilterStrategy filterStrategy, PlacementTarget target, IEnumerable<SiloAddress> silos)
    {
        var role = ((RolePlacementFilterStrategy)filterStrategy).Role;
        foreach (var silo in silos)
        {
            if (metadata.GetSiloMetadata(silo).Metadata.TryGetValue(NodeRoles.RoleKey, out var siloRole) && siloRole == role)
            {
                yield return silo;
            }
        }
    }
}
