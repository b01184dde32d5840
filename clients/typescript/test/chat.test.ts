/** chat.send, stream resume across a killed socket, stream.cancel, errors. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect, RpcError } from "yamabiko-client";
import { slowScript, startRelay, startServer, within, type Relay, type Server } from "./support.js";

const SLOW = slowScript(40, 40);
const VERY_SLOW = slowScript(300, 40);
const SCRIPT = [
  JSON.stringify({ pattern: "quick", tokens: ["Side", "chain", " the", " bass."] }),
  JSON.stringify({ pattern: "slow", reply: SLOW.text, delayMs: 40 }),
  JSON.stringify({ pattern: "endless", reply: VERY_SLOW.text, delayMs: 40 }),
].join("\n");
const MODEL = "scripted/chat.jsonl";

let server: Server;
let relay: Relay;

before(async () => {
  server = await startServer({ "chat.jsonl": SCRIPT });
  relay = await startRelay(server);
});
after(async () => {
  await relay.close();
  await server.stop();
});

test("chat.send yields the reply's text, then the usage", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    const stream = await client.chat.send({ message: "quick tip?", model: MODEL });
    const parts: string[] = [];
    for await (const text of stream) parts.push(text);
    const end = await stream.end;
    assert.deepEqual(parts, ["Side", "chain", " the", " bass."]);
    assert.equal(end.finishReason, "stop");
    assert.equal(end.usage.outputTokens, 4);
    assert.equal(stream.result.streamId, stream.streamId);
  } finally {
    client.close();
  }
});

test("a socket killed mid-stream: the stream resumes after its last seq, each delta once", async () => {
  const client = await connect(relay.url, { token: server.token(), reconnect: { baseDelayMs: 50, maxDelayMs: 200 } });
  const resubscribed: { streamId: string; afterSeq: number }[] = [];
  client.events.on("resubscribed", (e) => resubscribed.push(e));
  const seen: number[] = [];
  client.on("stream/delta", (d) => {
    for (let s = d.fromSeq ?? d.seq; s <= d.seq; s++) seen.push(s);
  });
  try {
    const stream = await client.chat.send({ message: "slow please", model: MODEL });
    let text = "";
    let deltas = 0;
    await within(
      (async () => {
        for await (const part of stream) {
          text += part;
          if (++deltas === 5) relay.cut(); // the stream is still live: 35 words to go
        }
      })(),
      "the resumed stream to end",
    );
    const end = await stream.end;
    assert.equal(end.finishReason, "stop");
    assert.equal(text, SLOW.text, "the app saw the whole reply exactly once");
    assert.equal(relay.cuts, 1);
    assert.ok(relay.connections >= 2, "the client reconnected");
    const resumed = resubscribed.find((r) => r.streamId === stream.streamId);
    assert.ok(resumed, "the stream was subscribed again on the new socket");
    assert.ok(resumed.afterSeq >= 5, `afterSeq ${resumed.afterSeq} names what was seen`);
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => i + 1), "each seq once, in order");
    assert.equal(seen.length, end.seq - 1);
  } finally {
    client.close();
  }
});

test("a second drop while the streams are being resumed: still each delta once", async () => {
  const client = await connect(relay.url, { token: server.token(), reconnect: { baseDelayMs: 50, maxDelayMs: 200 } });
  let reconnects = 0;
  client.events.on("reconnected", () => {
    if (++reconnects === 1) relay.cut(); // the stream/subscribe is on its way, or about to be
  });
  try {
    const stream = await client.chat.send({ message: "slow once more", model: MODEL });
    let deltas = 0;
    await within(
      (async () => {
        for await (const _ of stream) if (++deltas === 3) relay.cut();
      })(),
      "the stream to end",
    );
    assert.equal((await stream.end).finishReason, "stop");
    assert.equal(stream.text, SLOW.text);
    assert.ok(reconnects >= 2, `${reconnects} reconnects`);
    assert.equal(client.state, "open");
  } finally {
    client.close();
  }
});

test("stream.cancel() ends the reply early with finishReason cancelled", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    const stream = await client.chat.send({ message: "endless please", model: MODEL });
    let deltas = 0;
    for await (const _ of stream) {
      if (++deltas === 3) assert.equal(await stream.cancel(), true);
    }
    const end = await within(stream.end, "stream/end");
    assert.equal(end.finishReason, "cancelled");
    assert.ok(stream.text.length < VERY_SLOW.text.length);
    assert.ok(VERY_SLOW.text.startsWith(stream.text));
  } finally {
    client.close();
  }
});

test("a refused request rejects with the server's code", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    await assert.rejects(
      client.chat.send({ message: "quick", model: MODEL, conversationId: "no-such-conversation" }),
      (e: unknown) => e instanceof RpcError && e.code === -32004,
    );
    // The connection is fine afterwards.
    assert.deepEqual(await client.call("ping"), {});
  } finally {
    client.close();
  }
});

test("follow() picks up a stream by id after a given seq", async () => {
  const a = await connect(server.url, { token: server.token() });
  const b = await connect(server.url, { token: server.token() });
  try {
    const stream = await a.chat.send({ message: "slow again", model: MODEL });
    const reader = stream[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) await within(reader.next(), "a delta");
    const [afterSeq, seen] = [stream.lastSeq, stream.text];
    const followed = await b.chat.follow(stream.streamId, afterSeq);
    let rest = "";
    for await (const part of followed) rest += part;
    assert.equal(seen + rest, SLOW.text);
    assert.equal((await followed.end).finishReason, "stop");
  } finally {
    a.close();
    b.close();
  }
});
