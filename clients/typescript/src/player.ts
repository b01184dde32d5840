/**
 * Plays an `AudioStream` in a browser while it streams: samples go to an
 * AudioWorklet that starts after a small jitter buffer (default 60 ms) and, on an
 * underrun, plays silence and buffers again rather than crackle. Where the worklet
 * cannot load (its module is a `blob:` URL, which a Content-Security-Policy without
 * `blob:` in `script-src` refuses), chunks are scheduled back to back as
 * AudioBufferSourceNodes after the same jitter delay instead. Browser only: Node apps
 * read `stream.samples()` themselves.
 */
import { Pcm16Decoder, type AudioStream } from "./audio.js";

const PROCESSOR = "yamabiko-player";
const WORKLET_SOURCE = `
class P extends AudioWorkletProcessor {
  constructor(o) {
    super();
    this.q = []; this.off = 0; this.buffered = 0; this.started = false; this.ended = false;
    this.jitter = o.processorOptions.jitter; this.played = 0; this.underruns = 0;
    this.port.onmessage = (e) => {
      if (e.data === "end") this.ended = true;
      else if (e.data === "stop") { this.q = []; this.buffered = 0; this.ended = true; }
      else { this.q.push(e.data); this.buffered += e.data.length; }
    };
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.started) {
      if (this.buffered < this.jitter && !this.ended) { out.fill(0); return true; }
      this.started = true;
    }
    let i = 0;
    while (i < out.length && this.q.length) {
      const c = this.q[0], n = Math.min(out.length - i, c.length - this.off);
      out.set(c.subarray(this.off, this.off + n), i);
      i += n; this.off += n; this.buffered -= n;
      if (this.off >= c.length) { this.q.shift(); this.off = 0; }
    }
    this.played += i;
    if (i < out.length) {
      out.fill(0, i);
      if (!this.ended) { this.underruns++; this.started = false; }
    }
    if (this.ended && !this.q.length) {
      this.port.postMessage({ played: this.played, underruns: this.underruns });
      return false;
    }
    return true;
  }
}
registerProcessor("${PROCESSOR}", P);
`;

export interface PlaybackReport {
  /** Samples played (at the context's rate). */
  played: number;
  /** Times the buffer ran dry before the end. */
  underruns: number;
  /** Frames the stream delivered. */
  frames: number;
  /** How it played: "worklet", or "buffers" where the worklet could not load. */
  mode: "worklet" | "buffers";
}

const loaded = new WeakSet<BaseAudioContext>();

export class AudioPlayer {
  private node: AudioWorkletNode | null = null;
  private stopped = false;

  constructor(
    readonly context: AudioContext,
    private readonly options: { jitterMs?: number } = {},
  ) {}

  /** Plays `stream` (`pcm16` or `wav`) to the end; resolves with what was played. */
  async play(stream: AudioStream): Promise<PlaybackReport> {
    const ctx = this.context;
    if (!loaded.has(ctx)) {
      const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: "text/javascript" }));
      try {
        await ctx.audioWorklet.addModule(url);
        loaded.add(ctx);
      } catch {
        return this.playBuffers(stream);
      } finally {
        URL.revokeObjectURL(url);
      }
    }
    const node = new AudioWorkletNode(ctx, PROCESSOR, {
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { jitter: Math.round(this.jitterSeconds() * ctx.sampleRate) },
    });
    node.connect(ctx.destination);
    this.node = node;
    const done = new Promise<{ played: number; underruns: number }>((resolve) => {
      node.port.onmessage = (e: MessageEvent<{ played: number; underruns: number }>) => resolve(e.data);
    });
    try {
      for await (const samples of this.chunks(stream)) node.port.postMessage(samples, [samples.buffer]);
    } finally {
      node.port.postMessage("end");
    }
    const report = await done;
    node.disconnect();
    if (this.node === node) this.node = null;
    return { ...report, frames: stream.frames, mode: "worklet" };
  }

  /** The fallback: each chunk an AudioBuffer, scheduled right after the one before. */
  private async playBuffers(stream: AudioStream): Promise<PlaybackReport> {
    const ctx = this.context;
    let at = 0;
    let played = 0;
    let underruns = 0;
    const endings: Promise<void>[] = [];
    this.stopped = false;
    for await (const samples of this.chunks(stream)) {
      if (this.stopped) break;
      const buffer = ctx.createBuffer(1, samples.length, ctx.sampleRate);
      buffer.getChannelData(0).set(samples);
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(ctx.destination);
      if (at < ctx.currentTime) {
        if (at > 0) underruns++;
        at = ctx.currentTime + this.jitterSeconds();
      }
      source.start(at);
      at += buffer.duration;
      endings.push(
        new Promise<void>((resolve) => {
          source.onended = () => {
            played += samples.length;
            resolve();
          };
        }),
      );
    }
    await Promise.all(endings);
    return { played, underruns, frames: stream.frames, mode: "buffers" };
  }

  private jitterSeconds(): number {
    return (this.options.jitterMs ?? 60) / 1000;
  }

  /** The stream's samples at the context's rate. */
  private async *chunks(stream: AudioStream): AsyncGenerator<Float32Array> {
    const rate = stream.info?.sampleRate ?? this.context.sampleRate;
    const decoder = new Pcm16Decoder(stream.info?.format === "wav");
    for await (const frame of stream) {
      const samples = resample(decoder.push(frame.data), rate, this.context.sampleRate);
      if (samples.length > 0) yield samples;
    }
  }

  /** Stops what plays now (the stream itself goes on: cancel it too if it should). */
  stop(): void {
    this.stopped = true;
    this.node?.port.postMessage("stop");
  }
}

/** Linear interpolation from `from` Hz to `to` Hz (a context whose rate differs from
 * the stream's); the same array when they match. */
export function resample(samples: Float32Array, from: number, to: number): Float32Array {
  if (from === to || samples.length === 0) return samples;
  const out = new Float32Array(Math.floor((samples.length * to) / from));
  const step = from / to;
  for (let i = 0; i < out.length; i++) {
    const x = i * step;
    const j = Math.floor(x);
    const next = samples[Math.min(j + 1, samples.length - 1)]!;
    out[i] = samples[j]! + (next - samples[j]!) * (x - j);
  }
  return out;
}
