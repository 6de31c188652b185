namespace Converge.Nbd.Connection;

/// <summary>The client broke the protocol in a way that leaves no safe reply: the connection is dropped.</summary>
internal sealed class NbdProtocolException(string message) : Exception(message);
