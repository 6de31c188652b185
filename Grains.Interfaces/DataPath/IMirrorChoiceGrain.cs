namespace Converge.DataPath;

/// <summary>
/// Chooses the two storage nodes of new segments, one choice at a time for the whole cluster (key 0, on the control
/// plane's node). Volume controllers that each chose on their own, at the same moment, saw the same open-segment counts
/// and stacked their segments on the same nodes; here every choice counts the ones made just before it.
/// </summary>
[Alias("Converge.IMirrorChoiceGrain")]
public interface IMirrorChoiceGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// The two least loaded of <paramref name="candidates"/> (two or more distinct storage node names) for segment
    /// <paramref name="segmentId"/>, least loaded first; an empty array when fewer than two candidates were given.
    /// </summary>
    [Alias("Choose"), ResponseTimeout("00:00:03")]
    Task<string[]> ChooseAsync(Guid segmentId, string[] candidates);
}
