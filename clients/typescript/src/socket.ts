/**
 * The WebSocket the client runs on: the platform's (`globalThis.WebSocket`: browsers,
 * Deno, Node 22+) or, where there is none (Node 20), the `ws` package, loaded only
 * then. Only the members the browser API and `ws` share are used.
 */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export type SocketFactory = (url: string, token: string) => SocketLike;

const OPEN = 1;
export const isOpen = (socket: SocketLike): boolean => socket.readyState === OPEN;

type BrowserConstructor = new (url: string, protocols?: string | string[]) => SocketLike;
type NodeWsConstructor = new (
  url: string,
  protocols: string[],
  options: { headers: Record<string, string> },
) => SocketLike;

/** A factory for `url` + token. With the platform's WebSocket the token travels as
 * `?access_token=` (a browser cannot set headers); with `ws` it goes in the
 * `Authorization` header, out of URLs and access logs. */
export async function defaultFactory(): Promise<SocketFactory> {
  const native = (globalThis as { WebSocket?: BrowserConstructor }).WebSocket;
  if (typeof native === "function") {
    return (url, token) => new native(withToken(url, token));
  }
  let mod: { default?: unknown; WebSocket?: unknown };
  try {
    mod = (await import("ws")) as typeof mod;
  } catch {
    throw new Error("no WebSocket: this runtime has no globalThis.WebSocket; install the `ws` package");
  }
  const Ws = (mod.WebSocket ?? mod.default) as NodeWsConstructor;
  return (url, token) => new Ws(url, [], { headers: { Authorization: `Bearer ${token}` } });
}

/** A factory over a given constructor (a browser-compatible WebSocket class). */
export function factoryFor(ctor: BrowserConstructor): SocketFactory {
  return (url, token) => new ctor(withToken(url, token));
}

function withToken(url: string, token: string): string {
  const u = new URL(url);
  u.searchParams.set("access_token", token);
  return u.toString();
}
