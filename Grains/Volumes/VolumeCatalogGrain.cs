using Converge.Volumes;

namespace Converge.Grains.Volumes;

/// <summary>
/// The set of volume names. A create writes the volume grain first and the name second, so a crash in between
/// leaves an unlisted volume that a retried create reports as existing, never a listed name without a volume.
/// </summary>
[Converge.Grains.Placement.ControlPlanePlacement]
public sealed class VolumeCatalogGrain(
    [PersistentState("catalog", MetadataStorage.Name)] IPersistentState<VolumeCatalogState> state) : Grain, IVolumeCatalogGrain
{
    public async Task<VolumeResult> CreateAsync(string name, long sizeBytes, int blockSizeBytes)
    {
        if (VolumeRules.CheckName(name) is { } nameError)
        {
            return VolumeResult.Fail(VolumeError.InvalidName, nameError);
        }

        var result = await GrainFactory.GetGrain<IVolumeGrain>(name).CreateAsync(sizeBytes, blockSizeBytes);
        if (result.Ok || result.Error == VolumeError.AlreadyExists)
        {
            await AddNameAsync(name);
        }

        return result;
    }

    public async Task<VolumeResult> RemoveAsync(string name, bool force)
    {
        if (VolumeRules.CheckName(name) is { } nameError)
        {
            return VolumeResult.Fail(VolumeError.InvalidName, nameError);
        }

        var result = await GrainFactory.GetGrain<IVolumeGrain>(name).DeleteAsync(force);
        if (result.Ok || result.Error == VolumeError.NotFound)
        {
            if (state.State.Names.Remove(name))
            {
                await state.WriteStateAsync();
            }
        }

        return result;
    }

    public async Task<IReadOnlyList<VolumeInfo>> ListAsync()
    {
        var lookups = state.State.Names.Select(n => GrainFactory.GetGrain<IVolumeGrain>(n).GetAsync()).ToArray();
        var results = await Task.WhenAll(lookups);
        return results.Where(r => r.Ok).Select(r => r.Volume!).OrderBy(v => v.Name, StringComparer.Ordinal).ToArray();
    }

    private async Task AddNameAsync(string name)
    {
        if (!state.State.Names.Contains(name))
        {
            state.State.Names.Add(name);
            await state.WriteStateAsync();
        }
    }
}
