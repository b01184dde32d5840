/** Ghost text: keystrokes as versioned diffs, only current suggestions, feedback,
 * resync, and reopening after a reconnect. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { codePoints, connect, type GhostDocument, type Suggestion, type YamabikoClient } from "yamabiko-client";
import { startRelay, startServer, until, type Relay, type Server } from "./support.js";

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

const TARGET =
  "Add some compression to the vocal bus 🎤 and a little plate reverb on the guitars 🎸, " +
  "then bring the kick up two dB and sidechain the bass to it so the low end breathes";

/** The server holds the same text as `doc` at `doc.version`: `ghost/complete` for
 * that version succeeds and suggests what a fresh document with the text gets. */
/** The server's suggestions for `doc` are those of a fresh document with its text (opened
 * with the same `threshold`, when the test gave one). */
async function assertInSync(client: YamabikoClient, doc: GhostDocument, threshold?: number): Promise<void> {
  const ours = await client.call("ghost/complete", { docId: doc.docId, version: doc.version });
  assert.equal(ours.version, doc.version);
  const fresh = await client.ghost.open({
    text: doc.text,
    kind: "prompt",
    cursor: doc.cursor,
    ...(threshold === undefined ? {} : { threshold }),
  });
  const theirs = await client.call("ghost/complete", { docId: fresh.docId });
  await fresh.close();
  assert.deepEqual(
    ours.items.map((i) => i.text),
    theirs.items.map((i) => i.text),
  );
}

const withoutLast = (text: string) => Array.from(text).slice(0, -1).join("");

function nextSuggestions(doc: GhostDocument): Promise<Suggestion[]> {
  if (doc.suggestions.length > 0) return Promise.resolve(doc.suggestions);
  return until<Suggestion[]>((check) => doc.events.on("suggestions", check), (items) => items.length > 0, "suggestions");
}

test("codePoints counts surrogate pairs once", () => {
  assert.equal(codePoints("a🎤b", 0), 0);
  assert.equal(codePoints("a🎤b", 3), 2);
  assert.equal(codePoints("a🎤b", 4), 3);
});

test("200 keystrokes with deletions stay in step with the server; only current suggestions show", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    const doc = await client.ghost.open({ text: "", kind: "prompt" });
    const resyncs: string[] = [];
    doc.events.on("resync", (r) => resyncs.push(r.reason));
    const shownAt: number[] = [];
    doc.events.on("suggestions", (items) => items.length > 0 && shownAt.push(doc.version));
    const stale: number[] = [];
    client.on("ghost/suggestions", (p) => p.version !== doc.version && stale.push(p.version));

    const chars = Array.from(TARGET);
    let value = "";
    let keystrokes = 0;
    for (let i = 0; i < chars.length; i++) {
      value += chars[i];
      doc.update(value);
      keystrokes++;
      if (i % 9 === 4) {
        // A typo fixed with backspace.
        value = withoutLast(value);
        doc.update(value);
        value += chars[i];
        doc.update(value);
        keystrokes += 2;
      }
      if (i % 40 === 39) {
        // A word deleted in the middle (a selection and Delete), then typed back.
        const at = value.indexOf(" ", 5);
        const removed = value.slice(at, at + 4);
        doc.update(value.slice(0, at) + value.slice(at + 4), at);
        doc.update(value, at + 4);
        doc.update(value, value.length); // the caret back at the end
        keystrokes += 3;
        assert.equal(removed.length, 4);
      }
    }
    assert.ok(keystrokes >= 200, `${keystrokes} keystrokes`);
    assert.equal(doc.text, TARGET);
    await assertInSync(client, doc);
    assert.deepEqual(resyncs, []);
    assert.ok(shownAt.every((v, i) => i === 0 || v >= shownAt[i - 1]!), "shown versions never go back");
    assert.ok(doc.suggestions.length === 0 || shownAt.at(-1) === doc.version);
  } finally {
    client.close();
  }
});

test("accept, partial accept and reject report feedback and edit the text", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    // Threshold 0: every suggestion is shown, so that each step below has one to act on.
    const doc = await client.ghost.open({ text: "Add some compression to the vo", kind: "prompt", threshold: 0 });
    const first = (await nextSuggestions(doc))[0]!;
    const before_ = doc.text;
    assert.equal(doc.accept(), first.text);
    assert.equal(doc.text, before_ + first.text);
    assert.deepEqual(doc.suggestions, [], "the accepted suggestion is gone");
    await assertInSync(client, doc, 0);

    doc.update(doc.text + " and");
    const next = (await nextSuggestions(doc))[0]!;
    const part = doc.acceptPartial();
    assert.ok(part && next.text.startsWith(part));
    await assertInSync(client, doc, 0);

    doc.update(doc.text + " ");
    await nextSuggestions(doc);
    doc.reject();
    assert.deepEqual(doc.suggestions, []);
  } finally {
    client.close();
  }
});

test("a change the server cannot apply is answered by resending the text whole", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    const doc = await client.ghost.open({ text: "Side chain the", kind: "prompt" });
    const resync = until<{ reason: string }>((check) => doc.events.on("resync", check), () => true, "resync");
    // A change from nowhere: a skipped version.
    client.notify("ghost/change", { docId: doc.docId, version: doc.version + 5, changes: [{ start: 0, end: 0, text: "x" }] });
    await resync;
    doc.update(doc.text + " bass");
    await assertInSync(client, doc);
  } finally {
    client.close();
  }
});

test("after a reconnect the document is opened again with its text", async () => {
  const client = await connect(relay.url, { token: server.token(), reconnect: { baseDelayMs: 50 } });
  try {
    const doc = await client.ghost.open({ text: "Add some compression", kind: "prompt" });
    doc.update(doc.text + " to the");
    const reconnected = until((check) => client.events.on("reconnected", check), () => true, "reconnected");
    relay.cut();
    await reconnected;
    await until((check) => client.events.on("state", check), (s) => s === "open", "open");
    doc.update(doc.text + " vocal");
    await assertInSync(client, doc);
  } finally {
    client.close();
  }
});
