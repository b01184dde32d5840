/** `chat/send` as an async iterable of text (docs/streams.md). */
import type { CallOptions, Client } from "./client.js";
import type { ChatSendParams, ChatSendResult } from "./generated/types.js";
import { TextStream } from "./streams.js";

export interface ChatStream extends TextStream {
  /** What `chat/send` answered: conversation, message and stream ids, model. */
  readonly result: ChatSendResult;
}

export class Chat {
  constructor(private readonly client: Client) {}

  /**
   * Sends a message and follows the reply: `for await (const text of stream)` yields
   * each delta once, across reconnects; `await stream.end` gives the finish reason and
   * usage; `stream.cancel()` stops the generation. Rejects with `RpcError` when the
   * server refuses the message (budget, model, conflict: docs/streams.md).
   */
  async send(params: ChatSendParams, options?: CallOptions): Promise<ChatStream> {
    const result = await this.client.call("chat/send", params, options);
    const stream = new TextStream(result.streamId, { request: (m, p) => this.client.request(m, p) }) as ChatStream;
    (stream as { result: ChatSendResult }).result = result;
    this.client.streams.add(stream);
    return stream;
  }

  /** Follows a stream started elsewhere (another tab, before a reload) from after
   * `afterSeq`; rejects with `StreamExpiredError` when its history is gone. */
  async follow(streamId: string, afterSeq = 0): Promise<TextStream> {
    const stream = new TextStream(streamId, { request: (m, p) => this.client.request(m, p) });
    stream.lastSeq = afterSeq;
    this.client.streams.add(stream);
    const failure = await this.client.streams.resume(stream);
    if (failure) throw failure;
    return stream;
  }
}
