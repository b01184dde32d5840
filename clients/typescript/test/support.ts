/**
 * Test support: a real `yamabiko serve` on 127.0.0.1 (the repo's venv), tokens minted
 * with the data dir's secret as `yamabiko token` does, and a TCP relay the tests cut
 * to kill sockets the way a network drop does (no close frame).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

export const REPO = resolve(process.cwd(), "..", "..");
export const YAMABIKO = process.env["YAMABIKO_BIN"] ?? join(REPO, ".venv", "bin", "yamabiko");

/** Every wait in the tests is bounded by this. */
export const WAIT_MS = 15_000;

export interface Server {
  url: string;
  port: number;
  dataDir: string;
  scriptsDir: string;
  token(claims?: TokenClaims): string;
  stop(): Promise<void>;
}

export interface TokenClaims {
  sub?: string;
  tenant?: string;
  scopes?: string[];
  ttlS?: number;
  jti?: string;
}

/** The environment without the machine's Yamabiko settings and provider keys. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith("YAMABIKO_") || k.endsWith("_API_KEY") || k.endsWith("_BASE_URL")) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Starts `yamabiko serve --port 0` with a fresh data dir and a scripts dir holding
 * `scripts` (file name to content); resolves once it listens. */
export async function startServer(scripts: Record<string, string> = {}, env: Record<string, string> = {}): Promise<Server> {
  const root = mkdtempSync(join(tmpdir(), "yamabiko-ts-"));
  const dataDir = join(root, "data");
  const scriptsDir = join(root, "scripts");
  mkdirSync(scriptsDir);
  for (const [name, text] of Object.entries(scripts)) writeFileSync(join(scriptsDir, name), text);
  const proc = spawn(YAMABIKO, ["serve", "--port", "0", "--data-dir", dataDir], {
    // MCP's HTTP face on a free port too: tests run beside other servers.
    env: cleanEnv({ YAMABIKO_SCRIPTS_DIR: scriptsDir, YAMABIKO_LOG_LEVEL: "WARNING", YAMABIKO_MCP_PORT: "0", ...env }),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await firstLine(proc);
  const port = Number(new URL(url).port);
  const secret = readFileSync(join(dataDir, "jwt_secret"), "utf8").trim();
  return {
    url,
    port,
    dataDir,
    scriptsDir,
    token: (claims = {}) => mintToken(secret, claims),
    stop: async () => {
      await stopProcess(proc);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function firstLine(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("yamabiko serve did not start")), 90_000);
    const lines = createInterface({ input: proc.stdout! });
    lines.once("line", (line) => {
      clearTimeout(timer);
      const match = /^listening on (ws:\/\/\S+)$/.exec(line);
      if (match) resolve(match[1]!);
      else reject(new Error(`unexpected first line: ${line}`));
    });
    proc.once("exit", (code) => reject(new Error(`yamabiko serve exited with ${code}`)));
  });
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");

/** An HS256 token like `yamabiko token` mints (docs/configuration.md). */
export function mintToken(secret: string, claims: TokenClaims = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    sub: claims.sub ?? "alice",
    tid: claims.tenant ?? "acme",
    scope: (claims.scopes ?? ["chat", "agent", "ghost", "audio"]).join(" "),
    iat: now,
    exp: now + (claims.ttlS ?? 3600),
    jti: claims.jti ?? randomUUID().replace(/-/g, ""),
  };
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A TCP relay to `port`: `url` goes through it, `cut()` destroys every connection
 * at once (the client sees 1006, as on a network drop); `stall()` stops forwarding on
 * them without closing anything (a half-open path: nothing arrives, no close either).
 * New connections are relayed normally after either. */
export interface Relay {
  url: string;
  cuts: number;
  connections: number;
  cut(): void;
  stall(): void;
  close(): Promise<void>;
}

export async function startRelay(target: Server): Promise<Relay> {
  const live = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  const relay: Relay = {
    url: "",
    cuts: 0,
    connections: 0,
    cut() {
      relay.cuts++;
      for (const s of live) s.destroy();
      live.clear();
      pairs.clear();
    },
    stall() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
      pairs.clear();
    },
    close: () => new Promise<void>((resolve) => {
      relay.cut();
      server.close(() => resolve());
    }),
  };
  const server = createServer((inbound) => {
    relay.connections++;
    const outbound = tcpConnect(target.port, "127.0.0.1");
    live.add(inbound);
    live.add(outbound);
    pairs.add([inbound, outbound]);
    inbound.pipe(outbound).pipe(inbound);
    const drop = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", drop).on("close", drop);
    outbound.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  relay.url = target.url.replace(/:\d+\//, `:${address.port}/`);
  return relay;
}

/** Resolves when `predicate` holds, checked on each event of `subscribe`; rejects
 * after `ms`. */
export function until<T>(subscribe: (check: (value: T) => void) => () => void, predicate: (value: T) => boolean, what: string, ms = WAIT_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    let off: (() => void) | null = null;
    const timer = setTimeout(() => {
      off?.();
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    off = subscribe((value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      off?.();
      resolve(value);
    });
  });
}

/** `promise`, or a rejection after `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]);
}

/** A slow scripted reply: `words` words, `delayMs` before each. */
export function slowScript(words: number, delayMs: number): { text: string; script: string } {
  const text = Array.from({ length: words }, (_, i) => `word${i + 1}`).join(" ");
  return { text, script: JSON.stringify({ reply: text, delayMs }) + "\n" };
}
