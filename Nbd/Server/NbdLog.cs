using System.Net;
using Microsoft.Extensions.Logging;

namespace Converge.Nbd.Server;

internal static partial class NbdLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "NBD server listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, EndPoint endPoint);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "NBD server on {EndPoint} stopped")]
    public static partial void Stopped(ILogger logger, EndPoint endPoint);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "NBD connection from {Remote} refused: {Active} connections is the limit")]
    public static partial void ConnectionLimit(ILogger logger, EndPoint? remote, int active);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "NBD connection {ConnectionId} from {Remote} opened")]
    public static partial void ConnectionOpened(ILogger logger, long connectionId, EndPoint? remote);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "NBD connection {ConnectionId} closed: {Reason}")]
    public static partial void ConnectionClosed(ILogger logger, long connectionId, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "NBD connection {ConnectionId} disconnected: {Reason}")]
    public static partial void ProtocolViolation(ILogger logger, long connectionId, string reason);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "NBD connection {ConnectionId} entered transmission on export {Export} ({SizeBytes} bytes, structured replies {Structured})")]
    public static partial void Transmission(ILogger logger, long connectionId, string export, long sizeBytes, bool structured);

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "NBD connection {ConnectionId} refused export {Export}: {Status} {Message}")]
    public static partial void OpenRefused(ILogger logger, long connectionId, string export, string status, string message);

    [LoggerMessage(EventId = 9, Level = LogLevel.Error, Message = "NBD connection {ConnectionId}: backend failed on {Command}")]
    public static partial void BackendFailed(ILogger logger, long connectionId, string command, Exception exception);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "NBD connection {ConnectionId} closed with {InFlight} requests still in flight after the drain timeout")]
    public static partial void DrainTimedOut(ILogger logger, long connectionId, int inFlight);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "NBD connection {ConnectionId} failed")]
    public static partial void ConnectionFailed(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "NBD accept loop on {EndPoint} failed")]
    public static partial void AcceptFailed(ILogger logger, EndPoint endPoint, Exception exception);
}
