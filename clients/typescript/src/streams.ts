/**
 * Streams the client follows, and how they survive a reconnect (docs/streams.md).
 *
 * Every stream item carries a `seq` (1, 2, 3...; a merged delta carries `fromSeq` and
 * `seq`). Each followed stream keeps the last `seq` it delivered; on a new socket the
 * registry re-subscribes every stream still live with `stream/subscribe {streamId,
 * afterSeq: lastSeq}`, so the server replays exactly what the app has not seen. An item
 * at or below `lastSeq` is dropped, so even an overlap never reaches the app twice.
 */
import type { BinaryFrame } from "./frames.js";
import { CONFLICT, INVALID_PARAMS, NOT_FOUND, RpcError, StreamExpiredError } from "./errors.js";
import type { StreamEndParams, ErrorParams, DeltaParams, SubscribeResult } from "./generated/types.js";

/** What a stream needs from the client: a way to call the server. */
export interface StreamHost {
  request(method: string, params: object): Promise<unknown>;
}

/** Items for a stream not registered yet (its items can overtake the result that
 * names it) wait here; bounded, oldest dropped first. */
const MAX_ORPHANS = 1024;
/** How many times a failed subscription is re-established before the stream fails. */
const MAX_RESUBSCRIBES = 3;

export abstract class LiveStream {
  /** The last `seq` delivered to the app. */
  lastSeq = 0;
  /** This session's number of the stream (binary audio frames name it). */
  streamNo: number | null = null;
  finished = false;
  resubscribes = 0;
  /** A subscribe is on its way: until its result names the stream's number, items
   * wait (binary frames cannot be matched before, and must not fall behind JSON ones). */
  awaitingNo = false;

  constructor(
    readonly streamId: string,
    protected readonly host: StreamHost,
  ) {}

  /** Takes a JSON item; false when its seq was delivered already. */
  accept(seq: number): boolean {
    if (seq <= this.lastSeq) return false;
    this.lastSeq = seq;
    return true;
  }

  abstract item(method: string, params: Record<string, unknown>): void;
  frame(_frame: BinaryFrame): void {}
  abstract fail(error: Error): void;
}

export class StreamRegistry {
  private byId = new Map<string, LiveStream>();
  private byNo = new Map<number, LiveStream>();
  private orphans: { streamId?: string; streamNo?: number; method: string; params?: Record<string, unknown>; frame?: BinaryFrame }[] = [];

  constructor(
    private readonly host: StreamHost,
    private readonly onResubscribed: (streamId: string, afterSeq: number) => void,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  has(streamId: string): boolean {
    return this.byId.has(streamId);
  }

  /** Follow `stream`; items that arrived before it was known are delivered now. */
  add(stream: LiveStream, streamNo?: number | null): void {
    this.byId.set(stream.streamId, stream);
    if (streamNo != null) this.bindNo(stream, streamNo);
    const waiting = this.orphans.filter((o) => o.streamId === stream.streamId);
    this.orphans = this.orphans.filter((o) => o.streamId !== stream.streamId);
    for (const o of waiting) this.item(o.method, o.params!);
  }

  remove(stream: LiveStream): void {
    if (this.byId.get(stream.streamId) === stream) this.byId.delete(stream.streamId);
    if (stream.streamNo != null && this.byNo.get(stream.streamNo) === stream) this.byNo.delete(stream.streamNo);
  }

  private bindNo(stream: LiveStream, streamNo: number): void {
    stream.streamNo = streamNo;
    stream.awaitingNo = false;
    this.byNo.set(streamNo, stream);
    // In arrival order, binary and JSON items alike.
    const mine = (o: (typeof this.orphans)[number]) => o.streamNo === streamNo || o.streamId === stream.streamId;
    const waiting = this.orphans.filter(mine);
    this.orphans = this.orphans.filter((o) => !mine(o));
    for (const o of waiting) {
      if (o.frame) this.frame(o.frame);
      else this.item(o.method, o.params!);
    }
  }

  /** Routes a notification to its stream: "duplicate" when that stream delivered its
   * seq already (the app must not see it again), else "new" (also for non-stream
   * notifications and items of streams nobody follows). */
  item(method: string, params: Record<string, unknown>): "new" | "duplicate" {
    const streamId = params["streamId"];
    const seq = params["seq"];
    if (!/^(stream|audio)\//.test(method) || typeof streamId !== "string" || typeof seq !== "number") return "new";
    const stream = this.byId.get(streamId);
    if (!stream || stream.awaitingNo) {
      this.orphan({ streamId, method, params });
      return "new";
    }
    if (method === "stream/error" && seq <= stream.lastSeq) {
      // The subscription failed (not the generation): its seq is the last item this
      // session delivered, and no stream/end follows. Subscribe again from there.
      void this.resubscribe(stream);
      return "duplicate";
    }
    if (!stream.accept(seq)) return "duplicate";
    stream.item(method, params);
    if (stream.finished) this.remove(stream);
    return "new";
  }

  frame(frame: BinaryFrame): void {
    const stream = this.byNo.get(frame.streamNo);
    if (!stream) {
      this.orphan({ streamNo: frame.streamNo, method: "", frame });
      return;
    }
    if (stream.accept(frame.seq)) stream.frame(frame);
  }

  private orphan(o: (typeof this.orphans)[number]): void {
    this.orphans.push(o);
    if (this.orphans.length > MAX_ORPHANS) this.orphans.shift();
  }

  /** The socket went: stream numbers and early items belonged to that session. */
  sessionEnded(): void {
    this.byNo.clear();
    for (const stream of this.byId.values()) stream.streamNo = null;
    this.orphans = [];
  }

  /** On a new session: every live stream subscribed again after its last seq. */
  async resumeAll(): Promise<void> {
    await Promise.all([...this.byId.values()].map((s) => this.resume(s, true)));
  }

  /** Subscribes `stream` after its last seq; a stream whose history is gone fails with
   * `StreamExpiredError`, one the server refuses with its `RpcError`. With
   * `keepOnDisconnect`, a subscribe lost with its socket leaves the stream followed, for
   * the next session to resume. */
  async resume(stream: LiveStream, keepOnDisconnect = false): Promise<Error | null> {
    const afterSeq = stream.lastSeq;
    let result: SubscribeResult;
    stream.awaitingNo = true;
    try {
      result = (await this.host.request("stream/subscribe", { streamId: stream.streamId, afterSeq })) as SubscribeResult;
    } catch (error) {
      stream.awaitingNo = false;
      if (error instanceof RpcError && error.code === CONFLICT) return null; // still subscribed
      if (keepOnDisconnect && !(error instanceof RpcError)) return error as Error;
      const failure =
        error instanceof RpcError && (error.code === NOT_FOUND || error.code === INVALID_PARAMS)
          ? new StreamExpiredError(stream.streamId, error)
          : (error as Error);
      this.remove(stream);
      stream.fail(failure);
      return failure;
    }
    if (this.byId.get(stream.streamId) === stream) this.bindNo(stream, result.streamNo);
    this.onResubscribed(stream.streamId, afterSeq);
    return null;
  }

  private async resubscribe(stream: LiveStream): Promise<void> {
    if (++stream.resubscribes > MAX_RESUBSCRIBES) {
      this.remove(stream);
      stream.fail(new Error(`stream ${stream.streamId}: the subscription kept failing`));
      return;
    }
    try {
      await this.host.request("stream/unsubscribe", { streamId: stream.streamId });
    } catch {
      // gone already: subscribe below
    }
    await this.resume(stream);
  }

  /** Fails every stream (the client closed for good). */
  failAll(error: Error): void {
    for (const stream of [...this.byId.values()]) {
      this.remove(stream);
      stream.fail(error);
    }
  }
}

/** One reader's queue: what `for await` pulls from. */
export class Queue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  private ended = false;
  private error: unknown = null;

  push(item: T): void {
    if (this.ended) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error ?? null;
    if (this.waiting && this.items.length === 0) {
      const w = this.waiting;
      this.waiting = null;
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
      },
    };
  }
}

/** A deferred promise whose rejection is never "unhandled": the app may not await it. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * A text stream (`chat/send`, or one followed with `client.streams.follow`): iterate
 * it for the text as it comes, each delta exactly once across reconnects; `end`
 * resolves with `stream/end` (finish reason, usage, cost).
 */
export class TextStream extends LiveStream implements AsyncIterable<string> {
  /** All the text delivered so far. */
  text = "";
  /** The generation's `stream/error`, if it failed (`end` still follows). */
  error: ErrorParams | null = null;
  private readonly queue = new Queue<string>();
  private readonly ended = deferred<StreamEndParams>();
  readonly end: Promise<StreamEndParams> = this.ended.promise;

  item(method: string, params: Record<string, unknown>): void {
    if (method === "stream/delta") {
      const text = (params as unknown as DeltaParams).text;
      this.text += text;
      this.queue.push(text);
    } else if (method === "stream/error") {
      this.error = params as unknown as ErrorParams;
    } else if (method === "stream/end") {
      this.finished = true;
      this.queue.end();
      this.ended.resolve(params as unknown as StreamEndParams);
    }
  }

  fail(error: Error): void {
    this.finished = true;
    this.queue.end(error);
    this.ended.reject(error);
  }

  /** Stops the generation (`stream/cancel`); the stream then ends with
   * `finishReason: "cancelled"`. False if it had ended already. */
  async cancel(): Promise<boolean> {
    const result = (await this.host.request("stream/cancel", { streamId: this.streamId })) as { cancelled: boolean };
    return result.cancelled;
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.queue[Symbol.asyncIterator]();
  }
}
