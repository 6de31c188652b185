namespace Converge.Grains.Cluster;

// Declared beside the contracts so that clients and silos judge a failed call alike.
/// <summary>
/// The ways a grain call fails because of the cluster rather than the callee's answer: the runtime's own failures, a
/// timeout, a node-pinned grain whose node is gone, and a message that expired before it could be placed (Orleans
/// raises that one as <see cref="OperationCanceledException"/>, when a directory lookup outlives the call's timeout: the
/// silo owning that part of the directory is cut off or dead but not yet declared so).
/// </summary>
public static class CallFailure
{
    public static bool Is(Exception e) =>
        e is OrleansException or TimeoutException or Placement.NodeUnavailableException or OperationCanceledException;
}
