/**
 * Audio streams (docs/audio.md): `audio/synthesize` as an async iterable of frames,
 * binary (`audio.binary`, 12-byte header) or base64 (`audio/frame`), each frame once
 * across reconnects; `samples()` decodes `pcm16`/`wav` to Float32 PCM.
 */
import type { CallOptions, Client } from "./client.js";
import type { BinaryFrame } from "./frames.js";
import { fromBase64 } from "./frames.js";
import type { AudioEndParams, FrameParams, SynthesizeParams, SynthesizeResult } from "./generated/types.js";
import { LiveStream, Queue, deferred } from "./streams.js";

export interface AudioFrame {
  seq: number;
  /** The frame's bytes (`pcm16`: little-endian mono samples; `wav`: the header comes
   * in the first frame). */
  data: Uint8Array;
  last: boolean;
}

export class AudioStream extends LiveStream implements AsyncIterable<AudioFrame> {
  /** Frames delivered so far. */
  frames = 0;
  private readonly queue = new Queue<AudioFrame>();
  private readonly ended = deferred<AudioEndParams>();
  /** `audio/end`: frames, duration, sha256; `cancelled` when cut short. */
  readonly end: Promise<AudioEndParams> = this.ended.promise;

  constructor(
    streamId: string,
    host: ConstructorParameters<typeof LiveStream>[1],
    /** What `audio/synthesize` answered (format, sample rate...); null when resumed
     * by id. */
    readonly info: SynthesizeResult | null,
  ) {
    super(streamId, host);
  }

  item(method: string, params: Record<string, unknown>): void {
    if (method === "audio/frame") {
      const p = params as unknown as FrameParams;
      this.push({ seq: p.seq, data: fromBase64(p.data), last: p.last });
    } else if (method === "audio/end") {
      this.finished = true;
      this.queue.end();
      this.ended.resolve(params as unknown as AudioEndParams);
    }
  }

  override frame(frame: BinaryFrame): void {
    // The socket's buffer is reused by nothing, but copy so the app may keep frames.
    this.push({ seq: frame.seq, data: frame.payload.slice(), last: frame.last });
  }

  private push(frame: AudioFrame): void {
    this.frames++;
    this.queue.push(frame);
  }

  fail(error: Error): void {
    this.finished = true;
    this.queue.end(error);
    this.ended.reject(error);
  }

  /** Stops the synthesis (`audio/cancel`); a last frame and `audio/end` with
   * `cancelled: true` follow. */
  async cancel(): Promise<boolean> {
    const result = (await this.host.request("audio/cancel", { streamId: this.streamId })) as { cancelled: boolean };
    return result.cancelled;
  }

  [Symbol.asyncIterator](): AsyncIterator<AudioFrame> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** The stream as Float32 samples in [-1, 1), chunk by chunk (`pcm16` and `wav`). */
  async *samples(): AsyncGenerator<Float32Array> {
    const decoder = new Pcm16Decoder(this.info?.format === "wav");
    for await (const frame of this) {
      const chunk = decoder.push(frame.data);
      if (chunk.length > 0) yield chunk;
    }
  }
}

/** Little-endian 16-bit PCM to Float32, carrying an odd byte across frames; with
 * `wav`, the header (up to its `data` chunk) is skipped first. */
export class Pcm16Decoder {
  private carry: Uint8Array = new Uint8Array(0);
  private header: boolean;

  constructor(wav: boolean) {
    this.header = wav;
  }

  push(bytes: Uint8Array): Float32Array {
    let data = bytes;
    if (this.carry.length > 0) {
      data = new Uint8Array(this.carry.length + bytes.length);
      data.set(this.carry);
      data.set(bytes, this.carry.length);
    }
    if (this.header) {
      const start = wavDataOffset(data);
      if (start === null) {
        this.carry = data;
        return new Float32Array(0);
      }
      this.header = false;
      data = data.subarray(start);
    }
    const usable = data.length & ~1;
    const view = new DataView(data.buffer, data.byteOffset, usable);
    const out = new Float32Array(usable / 2);
    for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
    this.carry = data.slice(usable);
    return out;
  }
}

/** Where the samples of a RIFF/WAVE file start, or null when more bytes are needed. */
function wavDataOffset(bytes: Uint8Array): number | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 12; // "RIFF" size "WAVE"
  while (at + 8 <= bytes.length) {
    const id = String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
    const size = view.getUint32(at + 4, true);
    if (id === "data") return at + 8;
    at += 8 + size + (size & 1);
  }
  return null;
}

export class Audio {
  constructor(private readonly client: Client) {}

  /** Starts a synthesis and follows its frames. */
  async synthesize(params: SynthesizeParams, options?: CallOptions): Promise<AudioStream> {
    const info = await this.client.call("audio/synthesize", params, options);
    const stream = new AudioStream(info.streamId, { request: (m, p) => this.client.request(m, p) }, info);
    this.client.streams.add(stream, info.streamNo);
    return stream;
  }

  /** Follows a stream from after `afterSeq` (after a reload, say); rejects with
   * `StreamExpiredError` once the server no longer keeps it. */
  async resume(streamId: string, afterSeq = 0, info: SynthesizeResult | null = null): Promise<AudioStream> {
    const stream = new AudioStream(streamId, { request: (m, p) => this.client.request(m, p) }, info);
    stream.lastSeq = afterSeq;
    this.client.streams.add(stream);
    const failure = await this.client.streams.resume(stream);
    if (failure) throw failure;
    return stream;
  }
}
