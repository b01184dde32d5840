/**
 * One Yamabiko connection that outlives its sockets.
 *
 * Theory of operation: the client is `connecting` until its first session is
 * initialized, then `open`. When a socket drops it becomes `reconnecting`: requests in
 * flight fail with `ConnectionLostError` (the server may or may not have run them),
 * new requests wait for the next session, and attempts follow a jittered exponential
 * backoff. Each new session is initialized with the same capabilities, then every
 * followed stream is re-subscribed after its last seq and every ghost document is
 * reopened. A close with 4001 (token expired or revoked, docs/protocol.md) is not
 * retried blindly: `getToken` is asked once for a fresh token, and if that socket is
 * refused too the client stops with `AuthError` (`closed`). The app's `close()` also
 * ends in `closed`, which is final.
 */
import { backoffDelay } from "./backoff.js";
import { Emitter } from "./emitter.js";
import {
  AuthError,
  ClosedError,
  ConnectionLostError,
  INTERNAL_ERROR,
  METHOD_NOT_FOUND,
  RpcError,
  TimeoutError,
  WS_1000_NORMAL,
  WS_1006_ABNORMAL,
  WS_4000_RECONNECTING,
  WS_4001_TOKEN_EXPIRED,
} from "./errors.js";
import { parseFrame } from "./frames.js";
import type {
  ClientCapabilities,
  ClientNotifications,
  ClientRequests,
  ExpiringParams,
  InitializeResult,
  RefreshResult,
  ServerNotifications,
  ServerRequests,
} from "./generated/types.js";
import { defaultFactory, factoryFor, isOpen, type SocketFactory, type SocketLike } from "./socket.js";
import { StreamRegistry } from "./streams.js";
import { tokenExpiry } from "./token.js";

export const PROTOCOL_VERSION = "yamabiko/1";

export type State = "connecting" | "open" | "reconnecting" | "closed";

export interface ReconnectOptions {
  /** First delay, doubled each attempt (default 250 ms). */
  baseDelayMs?: number;
  /** Longest delay (default 10 s). */
  maxDelayMs?: number;
  /** Attempts before giving up with the last error (default: unlimited). */
  maxAttempts?: number;
}

export type ServerRequestHandler<M extends keyof ServerRequests> = (
  params: ServerRequests[M]["params"],
) => ServerRequests[M]["result"] | Promise<ServerRequests[M]["result"]>;

export type RequestHandlers = { [M in keyof ServerRequests]?: ServerRequestHandler<M> };

export interface ConnectOptions {
  /** A bearer token (JWT). Give `getToken` instead to let the client fetch fresh ones. */
  token?: string;
  /** Returns a fresh token: called before the token expires (`session/expiring`), on a
   * reconnect with an expired token, and once after a 4001 close. */
  getToken?: () => string | Promise<string>;
  clientInfo?: { name: string; version?: string };
  /** Sent at `initialize`. `audio.binary` defaults to true; `daw.applyActions` is set
   * when `handlers` answers `client/applyActions`. */
  capabilities?: ClientCapabilities;
  /** Answers to server requests, registered before the first session so their
   * capabilities are declared. More can be added with `client.handle`. */
  handlers?: RequestHandlers;
  /** false: never reconnect (a drop closes the client). */
  reconnect?: ReconnectOptions | false;
  /** Bound on each request (default 30 s); `call` can override it. */
  requestTimeoutMs?: number;
  /** Bound on opening a socket and initializing it (default 10 s). */
  connectTimeoutMs?: number;
  /** How often to check the connection with a `ping` (default: the server's
   * `limits.pingIntervalMs`; 0: never). A ping unanswered within the same time means a
   * dead path (a half-open TCP connection sends no close): the socket is dropped and
   * the client reconnects. */
  keepaliveMs?: number;
  /** A browser-compatible WebSocket class to use instead of the platform's. */
  WebSocket?: new (url: string, protocols?: string | string[]) => SocketLike;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Lifecycle events (`client.events.on(...)`). */
export interface ClientEvents {
  state: State;
  /** A socket closed; the client reconnects unless the state says `closed`. */
  disconnected: { code: number; reason: string };
  /** A new session is initialized (streams and documents are being resumed). */
  reconnected: { attempt: number };
  /** A stream was subscribed again after `afterSeq` on a new session. */
  resubscribed: { streamId: string; afterSeq: number };
  /** `session/refresh` swapped the token. */
  tokenRefreshed: { expiresAt: string };
  /** Something the app should know: an `AuthError` that stopped the client, a refresh
   * that failed, a server request handler that threw. */
  error: Error;
}

type Params<M extends keyof ClientRequests> = ClientRequests[M]["params"];
type Result<M extends keyof ClientRequests> = ClientRequests[M]["result"];
/** Params may be left out when the method needs none. */
type ParamsArg<P> = Record<string, never> extends Omit<P, "_meta"> ? [params?: P, options?: CallOptions] : [params: P, options?: CallOptions];

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

interface Message {
  jsonrpc?: string;
  id?: string | number | null;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

/** A hook run on each new session after streams resume (the ghost helper's). */
export type SessionHook = () => Promise<void>;

export class Client {
  readonly events: Emitter<ClientEvents>;
  /** What the current session's `initialize` answered. */
  initializeResult!: InitializeResult;
  readonly streams: StreamRegistry;

  private state_: State = "connecting";
  private socket: SocketLike | null = null;
  private factory!: SocketFactory;
  private token: string | undefined;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private readonly notificationListeners: Emitter<Record<string, unknown>>;
  /** A socket is open and its session initialized, but streams and documents are still
   * being resumed: the client's own requests go out, the app's too. */
  private settingUp = false;
  private keepaliveTimer: ReturnType<typeof setTimeout> | null = null;
  private handlers = new Map<string, (params: never) => unknown>();
  private ready: Promise<void>;
  private readyResolve!: () => void;
  private readonly sessionHooks: SessionHook[] = [];
  private readonly capabilities: ClientCapabilities;

  private constructor(
    private readonly url: string,
    private readonly options: ConnectOptions,
  ) {
    // A lifecycle listener that throws is rethrown outside (re-emitting it as `error`
    // could recurse); a notification listener's error is reported as `error`.
    this.events = new Emitter<ClientEvents>();
    this.notificationListeners = new Emitter((e) => this.events.emit("error", e as Error));
    this.token = options.token;
    this.ready = this.newReady();
    for (const [method, handler] of Object.entries(options.handlers ?? {})) {
      if (handler) this.handlers.set(method, handler as (params: never) => unknown);
    }
    const caps = options.capabilities ?? {};
    this.capabilities = {
      ...caps,
      audio: { binary: true, ...(caps.audio ?? {}) },
      ...(this.handlers.has("client/applyActions") ? { daw: { applyActions: true, ...(caps.daw ?? {}) } } : {}),
    };
    this.streams = new StreamRegistry(
      { request: (method, params) => this.request(method, params) },
      (streamId, afterSeq) => this.events.emit("resubscribed", { streamId, afterSeq }),
    );
  }

  /** Opens a socket to `url` (`ws://host:port/ws`) and initializes the session. Rejects
   * when that first socket cannot be opened or is refused. */
  static async connect(url: string, options: ConnectOptions = {}): Promise<Client> {
    if (!options.token && !options.getToken) throw new TypeError("connect: give `token` or `getToken`");
    const client = new Client(url, options);
    client.factory = options.WebSocket ? factoryFor(options.WebSocket) : await defaultFactory();
    try {
      await client.openSession(await client.currentToken());
      client.settingUp = false;
    } catch (error) {
      client.finish(error as Error, false);
      throw error;
    }
    client.setState("open");
    return client;
  }

  get state(): State {
    return this.state_;
  }

  private isClosed(): boolean {
    return this.state_ === "closed";
  }

  /** Sends a request and resolves with its result; rejects with `RpcError` on an error
   * answer. Waits for a session while reconnecting (within the timeout). */
  async call<M extends keyof ClientRequests>(method: M, ...[params, options]: ParamsArg<Params<M>>): Promise<Result<M>> {
    return (await this.request(method, params ?? {}, options)) as Result<M>;
  }

  /** Sends a notification. While no session is open it is dropped: notifications carry
   * no answer to wait for, and the helpers resend what matters on a new session. */
  notify<M extends keyof ClientNotifications>(method: M, params: ClientNotifications[M]): void {
    if (this.socket && (this.state_ === "open" || this.settingUp)) this.write({ jsonrpc: "2.0", method, params });
  }

  /** Calls `listener` for each notification `method` from the server. Stream items are
   * delivered here too, deduplicated by seq across reconnects. */
  on<M extends keyof ServerNotifications>(method: M, listener: (params: ServerNotifications[M]) => void): () => void {
    return this.notificationListeners.on(method, listener as (value: unknown) => void);
  }

  /** Answers server requests `method` (`client/applyActions`...). A handler that throws
   * `RpcError` sends its code; anything else is -32603. Registering twice is an error. */
  handle<M extends keyof ServerRequests>(method: M, handler: ServerRequestHandler<M>): () => void {
    if (this.handlers.has(method)) throw new Error(`a handler for ${method} is registered already`);
    this.handlers.set(method, handler as (params: never) => unknown);
    return () => this.handlers.delete(method);
  }

  /** Runs `hook` after each reconnect, once streams are resumed. */
  onSession(hook: SessionHook): void {
    this.sessionHooks.push(hook);
  }

  /** Closes the socket for good (1000); pending requests and streams fail with
   * `ClosedError`. */
  close(): void {
    this.finish(new ClosedError("client closed"), true);
  }

  /** Untyped `call`, for methods this build does not know. */
  request(method: string, params: object = {}, options: CallOptions = {}): Promise<unknown> {
    const { signal, timeoutMs = this.options.requestTimeoutMs ?? 30_000 } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.state_ === "closed") return Promise.reject(new ClosedError("client closed"));
    return new Promise((resolve, reject) => {
      let id: number | null = null;
      let done = false;
      const settle = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (id !== null) this.pending.delete(id);
        fn();
      };
      const timer = setTimeout(
        () => settle(() => reject(new TimeoutError(`${method}: no answer within ${timeoutMs} ms`))),
        timeoutMs,
      );
      const onAbort = () => {
        // Tell the server to stop the work (docs/protocol.md, "Cancellation").
        if (id !== null && this.state_ === "open") {
          this.write({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "aborted" } });
        }
        settle(() => reject(signal!.reason));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const send = () => {
        if (done) return;
        if (this.state_ === "closed") return settle(() => reject(new ClosedError("client closed")));
        id = this.nextId++;
        this.pending.set(id, {
          resolve: (v) => settle(() => resolve(v)),
          reject: (e) => settle(() => reject(e)),
        });
        this.write({ jsonrpc: "2.0", id, method, params });
      };
      // Requests wait for an initialized session; the session's own (initialize,
      // resubscribes) go out on the socket being set up.
      if (this.socket && (this.state_ === "open" || this.settingUp)) send();
      else this.ready.then(send, (e: unknown) => settle(() => reject(e)));
    });
  }

  // -- sessions -------------------------------------------------------------------

  private newReady(): Promise<void> {
    return new Promise<void>((resolve) => (this.readyResolve = resolve));
  }

  private setState(state: State): void {
    if (this.state_ === state) return;
    this.state_ = state;
    if (state === "open") this.readyResolve();
    this.events.emit("state", state);
  }

  /** The token to open a socket with: the current one, or a fresh one when it has
   * expired (or is about to) and the app can give one. */
  private async currentToken(): Promise<string> {
    const exp = this.token ? tokenExpiry(this.token) : null;
    const stale = !this.token || (exp !== null && exp - Date.now() < 5_000);
    if (stale && this.options.getToken) this.token = await this.options.getToken();
    if (!this.token) throw new AuthError("no token");
    return this.token;
  }

  /** Opens a socket and initializes a session on it; rejects if either fails. */
  private openSession(token: string): Promise<void> {
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const socket = this.factory(this.url, token);
      socket.binaryType = "arraybuffer";
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.settingUp = false;
        socket.onclose = socket.onerror = socket.onmessage = socket.onopen = null;
        try {
          socket.close();
        } catch {
          // closing a socket that never opened
        }
        if (this.socket === socket) this.socket = null;
        this.rejectPending(new ConnectionLostError("connection lost"));
        reject(error);
      };
      const timer = setTimeout(() => fail(new ConnectionLostError(`no session within ${timeoutMs} ms`)), timeoutMs);
      socket.onerror = () => {};
      socket.onclose = (ev) =>
        fail(
          ev.code === WS_4001_TOKEN_EXPIRED
            ? new AuthError(ev.reason || "token expired or revoked", ev.code)
            : new ConnectionLostError(`socket closed (${ev.code}) before the session was ready`),
        );
      socket.onmessage = (ev) => this.receive(ev.data);
      socket.onopen = async () => {
        this.socket = socket;
        this.settingUp = true;
        try {
          this.initializeResult = (await this.request("initialize", {
            protocolVersion: PROTOCOL_VERSION,
            clientInfo: this.options.clientInfo ?? { name: "yamabiko-client", version: "0.1.0" },
            capabilities: this.capabilities,
          })) as InitializeResult;
          this.write({ jsonrpc: "2.0", method: "notifications/initialized", params: {} });
        } catch (error) {
          return fail(error as Error);
        }
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.onclose = (ev) => this.dropped(socket, ev.code, ev.reason);
        this.keepalive(socket);
        resolve();
      };
    });
  }

  /** After a new session is initialized: resume streams, run hooks, release waiters. */
  private async resumeSession(): Promise<void> {
    try {
      await this.streams.resumeAll();
      for (const hook of this.sessionHooks) {
        try {
          await hook();
        } catch (error) {
          // One document that cannot be reopened (or a socket lost meanwhile, which
          // starts the next reconnect) must not stop the others.
          this.events.emit("error", error as Error);
        }
      }
    } finally {
      this.settingUp = false;
    }
  }

  /** Pings on `socket` while it is the current one; an unanswered ping abandons it. */
  private keepalive(socket: SocketLike): void {
    const every = this.options.keepaliveMs ?? this.initializeResult.limits.pingIntervalMs;
    if (!every) return;
    const tick = async () => {
      this.keepaliveTimer = null;
      if (this.socket !== socket) return;
      try {
        await this.request("ping", {}, { timeoutMs: every });
      } catch (error) {
        if (error instanceof TimeoutError) return this.abandon(socket, "no answer to ping");
      }
      if (this.socket === socket) this.keepaliveTimer = setTimeout(tick, every);
    };
    this.keepaliveTimer = setTimeout(tick, every);
  }

  private stopKeepalive(): void {
    if (this.keepaliveTimer !== null) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }

  /** Drops the current socket and reconnects at once, as after a network drop (call it
   * when the platform says the network changed, e.g. the browser's `online` event). */
  reconnectNow(): void {
    if (this.socket && this.state_ === "open") this.abandon(this.socket, "reconnect requested");
  }

  private abandon(socket: SocketLike, reason: string): void {
    socket.onclose = socket.onmessage = null;
    try {
      socket.close(WS_4000_RECONNECTING, reason);
    } catch {
      // already closing
    }
    this.dropped(socket, WS_1006_ABNORMAL, reason);
  }

  private dropped(socket: SocketLike, code: number, reason: string): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.stopKeepalive();
    this.streams.sessionEnded();
    this.rejectPending(new ConnectionLostError(`connection lost (${code})`));
    if (this.state_ === "closed") return;
    const retry = code === WS_4001_TOKEN_EXPIRED || (this.options.reconnect !== false && code !== WS_1000_NORMAL);
    if (retry) {
      // Before any listener runs: a request made from one must wait for the next session.
      this.ready = this.newReady();
      this.setState("reconnecting");
    }
    this.events.emit("disconnected", { code, reason });
    if (this.isClosed()) return; // a listener closed the client
    if (code === WS_4001_TOKEN_EXPIRED) {
      void this.reconnect(true);
    } else if (this.options.reconnect === false || code === WS_1000_NORMAL) {
      this.finish(new ConnectionLostError(`closed by the server (${code})`), false);
    } else {
      void this.reconnect(false);
    }
  }

  /** Reconnects with backoff. `afterAuthClose`: the socket closed with 4001, so one
   * fresh token is fetched and one socket tried; its failure stops the client. */
  private async reconnect(afterAuthClose: boolean): Promise<void> {
    const { baseDelayMs = 250, maxDelayMs = 10_000, maxAttempts = Infinity } = this.options.reconnect || {};
    if (afterAuthClose) {
      if (!this.options.getToken) {
        return this.finish(new AuthError("token expired or revoked (4001) and no getToken to renew it", 4001), false);
      }
      try {
        this.token = await this.options.getToken();
        await this.openSession(this.token);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return this.finish(new AuthError(`refused again after a fresh token: ${message}`, 4001), false);
      }
      return this.sessionUp(1);
    }
    for (let attempt = 1; ; attempt++) {
      await new Promise((r) => setTimeout(r, backoffDelay(attempt, baseDelayMs, maxDelayMs)));
      if (this.state_ === "closed") return;
      try {
        await this.openSession(await this.currentToken());
        return this.sessionUp(attempt);
      } catch (error) {
        if (this.isClosed()) return;
        if (error instanceof AuthError) {
          return this.finish(error, false);
        }
        if (attempt >= maxAttempts) return this.finish(error as Error, false);
      }
    }
  }

  private async sessionUp(attempt: number): Promise<void> {
    if (this.state_ === "closed") return;
    const socket = this.socket;
    this.events.emit("reconnected", { attempt });
    await this.resumeSession();
    // Dropped again while resuming: the next reconnect is already under way.
    if (socket && this.socket === socket && !this.isClosed()) this.setState("open");
  }

  /** Stops the client for good: fails what waits, reports `error` unless the app asked. */
  private finish(error: Error, byApp: boolean): void {
    if (this.state_ === "closed") return;
    this.setState("closed");
    this.stopKeepalive();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = socket.onmessage = null;
      socket.close(WS_1000_NORMAL);
    }
    this.rejectPending(error);
    this.streams.failAll(error);
    // Requests queued for a session that will not come.
    const ready = this.readyResolve;
    this.ready = Promise.reject(error);
    this.ready.catch(() => {});
    ready();
    if (!byApp) this.events.emit("error", error);
  }

  private rejectPending(error: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(error);
  }

  // -- messages -------------------------------------------------------------------

  private write(message: Message): void {
    if (this.socket && isOpen(this.socket)) this.socket.send(JSON.stringify(message));
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") {
      const frame = parseFrame(data as ArrayBuffer);
      if (frame) this.streams.frame(frame);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return; // the server only sends JSON; nothing to answer a broken frame with
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
      if (message && typeof message === "object") this.dispatch(message as Message);
    }
  }

  private dispatch(message: Message): void {
    if (typeof message.method === "string") {
      if (message.id !== undefined && message.id !== null) void this.answer(message.id, message.method, message.params);
      else this.notification(message.method, (message.params ?? {}) as Record<string, unknown>);
      return;
    }
    if (typeof message.id !== "number") return;
    const pending = this.pending.get(message.id);
    if (!pending) return; // answered after a timeout or an abort
    if (message.error) pending.reject(new RpcError(message.error.code, message.error.message, message.error.data));
    else pending.resolve(message.result);
  }

  private notification(method: string, params: Record<string, unknown>): void {
    if (method === "session/expiring") void this.refresh(params as unknown as ExpiringParams);
    // A stream item the app has seen already (a replay overlap) goes no further.
    if (this.streams.item(method, params) === "duplicate") return;
    this.notificationListeners.emit(method, params);
  }

  private async answer(id: string | number, method: string, params: unknown): Promise<void> {
    const handler = this.handlers.get(method);
    if (!handler) {
      this.write({ jsonrpc: "2.0", id, error: { code: METHOD_NOT_FOUND, message: `no handler for ${method}` } });
      return;
    }
    try {
      const result = await handler(params as never);
      this.write({ jsonrpc: "2.0", id, result: result ?? {} });
    } catch (error) {
      if (error instanceof RpcError) {
        this.write({ jsonrpc: "2.0", id, error: { code: error.code, message: error.message, data: error.data } });
      } else {
        this.events.emit("error", error as Error);
        this.write({ jsonrpc: "2.0", id, error: { code: INTERNAL_ERROR, message: "internal error" } });
      }
    }
  }

  /** `session/expiring`: fetch a fresh token and swap it in on this session. */
  private async refresh(_params: ExpiringParams): Promise<void> {
    if (!this.options.getToken) return; // the server closes with 4001 at expiry
    try {
      const token = await this.options.getToken();
      const result = (await this.request("session/refresh", { token })) as RefreshResult;
      this.token = token;
      this.events.emit("tokenRefreshed", { expiresAt: result.expiresAt });
    } catch (error) {
      this.events.emit("error", error as Error);
    }
  }
}
