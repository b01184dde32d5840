/**
 * The errors the client raises. Whose fault each is:
 *
 * - `RpcError`: the server answered a request with a JSON-RPC error (`code`, `data`
 *   as sent; the codes are in docs/protocol.md).
 * - `ConnectionLostError`: the socket closed while a request was in flight; whether
 *   the server ran it is unknown. The client reconnects on its own.
 * - `AuthError`: the server refused the credential (close 4001, or a handshake that
 *   failed right after a fresh token was fetched). The client has stopped.
 * - `StreamExpiredError`: a stream could not be resumed because the server no longer
 *   keeps its history (past `YAMABIKO_STREAM_RETENTION_S`, docs/streams.md).
 * - `ClosedError`: the client was closed (by the app, or after an `AuthError`).
 * - `TimeoutError`: no answer within the request's timeout.
 *
 * Aborting a request through its `AbortSignal` rejects it with the signal's reason
 * (a `DOMException` named `AbortError` unless the app gave another).
 */
export class YamabikoError extends Error {
  override name = "YamabikoError";
}

export class RpcError extends YamabikoError {
  override name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

export class ConnectionLostError extends YamabikoError {
  override name = "ConnectionLostError";
}

export class AuthError extends YamabikoError {
  override name = "AuthError";
  constructor(
    message: string,
    readonly closeCode?: number,
  ) {
    super(message);
  }
}

export class StreamExpiredError extends YamabikoError {
  override name = "StreamExpiredError";
  constructor(
    readonly streamId: string,
    readonly cause_?: RpcError,
  ) {
    super(`stream ${streamId} expired: the server no longer keeps its history`);
  }
}

export class ClosedError extends YamabikoError {
  override name = "ClosedError";
}

export class TimeoutError extends YamabikoError {
  override name = "TimeoutError";
}

/** Error codes the client acts on (docs/protocol.md, docs/streams.md). */
export const NOT_FOUND = -32004;
export const INVALID_PARAMS = -32602;
export const CONFLICT = -32009;
export const METHOD_NOT_FOUND = -32601;
export const INTERNAL_ERROR = -32603;

/** Close codes (docs/protocol.md, "Close codes"). */
export const WS_1000_NORMAL = 1000;
export const WS_1006_ABNORMAL = 1006;
export const WS_1009_TOO_BIG = 1009;
/** Sent by the client when it gives a socket up to reconnect (an application code). */
export const WS_4000_RECONNECTING = 4000;
export const WS_4001_TOKEN_EXPIRED = 4001;
