/** Tokens: refresh before expiry, 4001 (revoked, expired) and what the client does. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { AuthError, connect } from "yamabiko-client";
import { startRelay, startServer, until, within, type Relay, type Server } from "./support.js";

let server: Server;
let relay: Relay;

before(async () => {
  server = await startServer();
  relay = await startRelay(server);
});
after(async () => {
  await relay.close();
  await server.stop();
});

async function revoke(jti: string): Promise<void> {
  const admin = await connect(server.url, { token: server.token({ sub: "root", scopes: ["admin"] }) });
  try {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    await admin.call("admin/revokeToken", { jti, expiresAt });
  } finally {
    admin.close();
  }
}

test("a token about to expire is refreshed on the same socket (session/refresh)", async () => {
  const tokens = [server.token({ ttlS: 3 }), server.token({ ttlS: 3600 })];
  let asked = 0;
  const client = await connect(server.url, { getToken: () => tokens[asked++]! });
  const drops: number[] = [];
  client.events.on("disconnected", (e) => drops.push(e.code));
  try {
    // The server sends session/expiring at once: less than 60 s are left.
    const refreshed = await until<{ expiresAt: string }>((check) => client.events.on("tokenRefreshed", check), () => true, "tokenRefreshed");
    assert.ok(Date.parse(refreshed.expiresAt) > Date.now() + 3_000_000);
    assert.equal(asked, 2);
    // Past the first token's expiry the session is still the same one.
    await new Promise((r) => setTimeout(r, 4_000));
    assert.deepEqual(await client.call("ping"), {});
    assert.deepEqual(drops, []);
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
});

test("an expired token with no getToken: 4001 closes the client with AuthError, no retry", async () => {
  const before_ = relay.connections;
  const client = await connect(relay.url, { token: server.token({ ttlS: 2 }) });
  const error = await until<Error>((check) => client.events.on("error", check), () => true, "the error");
  assert.ok(error instanceof AuthError);
  assert.equal(error.closeCode, 4001);
  assert.equal(client.state, "closed");
  assert.equal(relay.connections - before_, 1, "no second socket");
  await assert.rejects(client.call("ping"), { name: "ClosedError" });
});

test("revoked (4001): getToken is asked once and the client reconnects with the fresh token", async () => {
  const first = randomUUID();
  const tokens = [server.token({ jti: first }), server.token()];
  let asked = 0;
  const client = await connect(relay.url, { getToken: () => tokens[asked++]!, reconnect: { baseDelayMs: 50 } });
  try {
    const reconnected = until((check) => client.events.on("reconnected", check), () => true, "reconnected");
    const dropped = until<{ code: number; reason: string }>((check) => client.events.on("disconnected", check), () => true, "disconnected");
    await revoke(first);
    assert.equal((await dropped).code, 4001);
    await reconnected;
    assert.equal(asked, 2);
    assert.deepEqual(await client.call("ping"), {});
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
});

test("revoked, and getToken gives a refused token: the error reaches the app and the client stops", async () => {
  const jti = randomUUID();
  const revoked = server.token({ jti });
  let asked = 0;
  const before_ = relay.connections;
  const client = await connect(relay.url, {
    getToken: () => {
      asked++;
      return revoked;
    },
    reconnect: { baseDelayMs: 50 },
  });
  const error = until<Error>((check) => client.events.on("error", check), () => true, "the error");
  await revoke(jti);
  const e = await error;
  assert.ok(e instanceof AuthError, String(e));
  assert.equal(client.state, "closed");
  assert.equal(asked, 2, "getToken asked once at connect, once after the 4001");
  assert.equal(relay.connections - before_, 2, "one socket after the 4001, then none");
  await within(client.call("ping").catch((x: Error) => x.name), "the rejection").then((name) => assert.equal(name, "ClosedError"));
});
