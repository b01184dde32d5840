/** The connection itself: backoff, requests across a drop, a dead path found by
 * keepalive pings, reconnecting on demand. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { backoffDelay, connect, ConnectionLostError } from "yamabiko-client";
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

const reconnected = (client: Awaited<ReturnType<typeof connect>>) =>
  until<string>((check) => client.events.on("state", check), (s) => s === "open", "open again");

test("backoff doubles up to the cap, jittered within its upper half", () => {
  assert.equal(backoffDelay(1, 100, 1000, () => 0), 50);
  assert.equal(backoffDelay(1, 100, 1000, () => 1), 100);
  assert.equal(backoffDelay(3, 100, 1000, () => 1), 400);
  assert.equal(backoffDelay(10, 100, 1000, () => 1), 1000);
  assert.equal(backoffDelay(10, 100, 1000, () => 0), 500);
});

test("a request in flight at a drop fails with ConnectionLostError; one made during the drop waits", async () => {
  const client = await connect(relay.url, {
    token: server.token(),
    reconnect: { baseDelayMs: 50 },
    handlers: {
      "client/applyActions": () => {
        relay.cut(); // the network goes while the server waits for us
        return { applied: true };
      },
    },
  });
  try {
    const context = { project: { name: "x", tempo: 100, key: "C major", timeSignature: "4/4", tracks: [] } };
    await assert.rejects(
      within(client.call("agent/run", { prompt: "set the tempo to 90", context, apply: "client" }), "the rejection"),
      (e: unknown) => e instanceof ConnectionLostError,
    );
    assert.notEqual(client.state, "open");
    // Asked while reconnecting: answered on the next session.
    assert.deepEqual(await within(client.call("ping"), "ping"), {});
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
});

test("a half-open connection is found by an unanswered ping and replaced", async () => {
  const client = await connect(relay.url, { token: server.token(), keepaliveMs: 300, reconnect: { baseDelayMs: 50 } });
  const drops: string[] = [];
  client.events.on("disconnected", (e) => drops.push(e.reason));
  try {
    const doc = await client.ghost.open({ text: "Add some", kind: "prompt" });
    const back = until<{ attempt: number }>((check) => client.events.on("reconnected", check), () => true, "reconnected");
    relay.stall();
    await back;
    await reconnected(client);
    assert.deepEqual(drops, ["no answer to ping"]);
    doc.update(doc.text + " compression");
    const done = await client.call("ghost/complete", { docId: doc.docId, version: doc.version });
    assert.equal(done.version, doc.version);
  } finally {
    client.close();
  }
});

test("reconnectNow() replaces the socket; the client is usable at once", async () => {
  const client = await connect(relay.url, { token: server.token(), reconnect: { baseDelayMs: 50 } });
  try {
    const before_ = relay.connections;
    client.reconnectNow();
    assert.deepEqual(await within(client.call("ping"), "ping"), {});
    assert.equal(relay.connections, before_ + 1);
  } finally {
    client.close();
  }
});

test("a request made from a disconnected listener waits for the next session", async () => {
  const client = await connect(relay.url, { token: server.token(), reconnect: { baseDelayMs: 50 } });
  try {
    const answer = new Promise<unknown>((resolve, reject) => {
      client.events.on("disconnected", () => client.call("ping").then(resolve, reject));
    });
    relay.cut();
    assert.deepEqual(await within(answer, "the ping"), {});
  } finally {
    client.close();
  }
});
