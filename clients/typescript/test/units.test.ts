/** The pure parts, without a server: frame headers, PCM decoding, resampling, tokens. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseFrame, Pcm16Decoder, resample, tokenExpiry } from "yamabiko-client";

test("a binary frame's 12-byte header is read; anything else is not a frame", () => {
  const bytes = new Uint8Array([0x59, 0x41, 1, 1, 0, 0, 0, 7, 0, 0, 1, 2, 0xaa, 0xbb]);
  assert.deepEqual(parseFrame(bytes), { last: true, streamNo: 7, seq: 258, payload: new Uint8Array([0xaa, 0xbb]) });
  assert.equal(parseFrame(new Uint8Array([0x59, 0x41, 2, 0, 0, 0, 0, 7, 0, 0, 0, 1])), null, "version 2");
  assert.equal(parseFrame(new Uint8Array([0x7b, 0x7d])), null);
});

test("pcm16 split at an odd byte decodes across frames", () => {
  const samples = new Int16Array([0, 16384, -32768, 32767]);
  const bytes = new Uint8Array(samples.buffer);
  const decoder = new Pcm16Decoder(false);
  const a = decoder.push(bytes.subarray(0, 3));
  const b = decoder.push(bytes.subarray(3));
  assert.deepEqual([...a, ...b], [0, 0.5, -1, 32767 / 32768]);
});

test("resampling keeps the duration and the shape", () => {
  const ramp = Float32Array.from({ length: 240 }, (_, i) => i / 240);
  const up = resample(ramp, 24000, 48000);
  assert.equal(up.length, 480);
  assert.ok(Math.abs(up[241]! - ramp[120]!) < 0.01);
  assert.equal(resample(ramp, 24000, 24000), ramp);
});

test("a token's exp is read in milliseconds; an unreadable token gives null", () => {
  const payload = Buffer.from(JSON.stringify({ exp: 2_000_000_000 })).toString("base64url");
  assert.equal(tokenExpiry(`h.${payload}.s`), 2_000_000_000_000);
  assert.equal(tokenExpiry("not a jwt"), null);
});
