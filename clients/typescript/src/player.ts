/**
 * Plays an `AudioStream` in a browser while it streams: samples go to an
 * AudioWorklet that starts after a small jitter buffer (default 60 ms) and, on an
 * underrun, plays silence and buffers again rather than crackle. Browser only: Node
 * apps read `stream.samples()` themselves.
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
}

const loaded = new WeakSet<BaseAudioContext>();

export class AudioPlayer {
  private node: AudioWorkletNode | null = null;

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
      } finally {
        URL.revokeObjectURL(url);
      }
      loaded.add(ctx);
    }
    const node = new AudioWorkletNode(ctx, PROCESSOR, {
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { jitter: Math.round(((this.options.jitterMs ?? 60) / 1000) * ctx.sampleRate) },
    });
    node.connect(ctx.destination);
    this.node = node;
    const done = new Promise<{ played: number; underruns: number }>((resolve) => {
      node.port.onmessage = (e: MessageEvent<{ played: number; underruns: number }>) => resolve(e.data);
    });
    const rate = stream.info?.sampleRate ?? ctx.sampleRate;
    const decoder = new Pcm16Decoder(stream.info?.format === "wav");
    try {
      for await (const frame of stream) {
        const samples = resample(decoder.push(frame.data), rate, ctx.sampleRate);
        if (samples.length > 0) node.port.postMessage(samples, [samples.buffer]);
      }
    } finally {
      node.port.postMessage("end");
    }
    const report = await done;
    node.disconnect();
    if (this.node === node) this.node = null;
    return { ...report, frames: stream.frames };
  }

  /** Stops what plays now (the stream itself goes on: cancel it too if it should). */
  stop(): void {
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
