/** Audio frames, binary and base64; decoding; cancel; resume across a drop; expiry. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";

import { connect, StreamExpiredError, type AudioFrame, type AudioStream, type SynthesizeParams } from "yamabiko-client";
import { startRelay, startServer, within, type Relay, type Server } from "./support.js";

let server: Server;
let relay: Relay;
/** A server keeping only 8 items of each stream's history. */
let short: Server;
before(async () => {
  [server, short] = await Promise.all([startServer(), startServer({}, { YAMABIKO_STREAM_MAX_ITEMS: "80" })]);
  relay = await startRelay(server);
});
after(async () => {
  await relay.close();
  await Promise.all([server.stop(), short.stop()]);
});

/** A sung melody of `beats` beats at 120 bpm (half a second a beat). */
function melody(beats: number, extra: Partial<SynthesizeParams> = {}): SynthesizeParams {
  const notes = Array.from({ length: beats }, (_, i) => ({ pitch: 60 + (i % 5), start: i, duration: 1, velocity: 90, lyric: "la" }));
  return { notes, tempo: 120, format: "pcm16", frameMs: 20, ...extra };
}

async function readAll(stream: AudioStream, onFrame?: (f: AudioFrame, n: number) => void): Promise<AudioFrame[]> {
  const frames: AudioFrame[] = [];
  await within(
    (async () => {
      for await (const f of stream) {
        frames.push(f);
        onFrame?.(f, frames.length);
      }
    })(),
    "the audio stream to end",
  );
  return frames;
}

function sha256(frames: AudioFrame[]): string {
  const hash = createHash("sha256");
  for (const f of frames) hash.update(f.data);
  return hash.digest("hex");
}

test("binary frames: every frame once, the bytes the server hashed, decodable PCM", async () => {
  const client = await connect(server.url, { token: server.token() });
  let base64 = 0;
  client.on("audio/frame", () => base64++);
  try {
    const stream = await client.audio.synthesize(melody(2));
    const frames = await readAll(stream);
    const end = await stream.end;
    assert.equal(base64, 0, "frames came as binary messages");
    assert.equal(frames.length, end.frames);
    assert.deepEqual(frames.map((f) => f.seq), Array.from({ length: frames.length }, (_, i) => i + 1));
    assert.equal(frames.at(-1)!.last, true);
    assert.equal(sha256(frames), end.sha256);
    assert.equal(end.durationMs, 1000);
    // pcm16 mono at the announced rate: the samples last the announced duration.
    const samples = frames.reduce((n, f) => n + f.data.length / 2, 0);
    assert.equal(samples, (stream.info!.sampleRate * end.durationMs) / 1000);
  } finally {
    client.close();
  }
});

test("base64 frames (no audio.binary) carry the same bytes; samples() decodes them", async () => {
  const client = await connect(server.url, { token: server.token(), capabilities: { audio: { binary: false } } });
  let base64 = 0;
  client.on("audio/frame", () => base64++);
  try {
    const stream = await client.audio.synthesize(melody(1, { format: "wav" }));
    let count = 0;
    let peak = 0;
    for await (const chunk of stream.samples()) {
      count += chunk.length;
      for (const s of chunk) peak = Math.max(peak, Math.abs(s));
    }
    const end = await stream.end;
    assert.equal(base64, end.frames);
    assert.equal(count, (stream.info!.sampleRate * end.durationMs) / 1000, "the WAV header is not counted as audio");
    assert.ok(peak > 0.05 && peak <= 1, `a sung note, peak ${peak}`);
  } finally {
    client.close();
  }
});

test("cancel: the stream ends early with cancelled: true", async () => {
  const client = await connect(server.url, { token: server.token() });
  try {
    const stream = await client.audio.synthesize(melody(10, { pace: "realtime" }));
    const frames = await readAll(stream, (_, n) => {
      if (n === 3) void stream.cancel();
    });
    const end = await stream.end;
    assert.equal(end.cancelled, true);
    assert.ok(frames.length < 250, `${frames.length} frames of 250`);
  } finally {
    client.close();
  }
});

test("a socket killed mid-stream: the frames resume after the last one, each once", async () => {
  const client = await connect(relay.url, { token: server.token(), reconnect: { baseDelayMs: 50, maxDelayMs: 200 } });
  const resumed: number[] = [];
  client.events.on("resubscribed", (e) => resumed.push(e.afterSeq));
  try {
    const stream = await client.audio.synthesize(melody(3, { pace: "realtime" }));
    const frames = await readAll(stream, (_, n) => n === 10 && relay.cut());
    const end = await stream.end;
    assert.equal(relay.cuts, 1);
    assert.ok(resumed.length === 1 && resumed[0]! >= 10, `resubscribed after ${resumed}`);
    assert.deepEqual(frames.map((f) => f.seq), Array.from({ length: end.frames }, (_, i) => i + 1));
    assert.equal(sha256(frames), end.sha256);
  } finally {
    client.close();
  }
});

test("resuming past the history the server keeps is a StreamExpiredError", async () => {
  const client = await connect(short.url, { token: short.token() });
  try {
    // 80 items kept: more than a fast producer runs ahead of its reader (64 frames), so
    // the live read keeps up, and fewer than the 100-odd frames of two seconds of song.
    const stream = await client.audio.synthesize(melody(4));
    await readAll(stream);
    assert.ok(stream.lastSeq > 90, `${stream.lastSeq} frames`);
    await assert.rejects(client.audio.resume(stream.streamId, 1), (e: unknown) => e instanceof StreamExpiredError);
    // Within what is kept it still works: the last two frames, then audio/end.
    const tail = await client.audio.resume(stream.streamId, stream.lastSeq - 3);
    const frames = await readAll(tail);
    assert.deepEqual(frames.map((f) => f.seq), [stream.lastSeq - 2, stream.lastSeq - 1]);
    assert.equal((await tail.end).seq, stream.lastSeq);
  } finally {
    client.close();
  }
});


