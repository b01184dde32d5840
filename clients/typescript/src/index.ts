/**
 * yamabiko-client: the client for Yamabiko front ends (browser, Electron, Node).
 *
 *   const client = await connect("wss://host/ws", { getToken });
 *   const reply = await client.chat.send({ message: "Mix tips?" });
 *   for await (const text of reply) render(text);
 *
 * See README.md and the server's docs/frontend.md.
 */
import { Audio } from "./audio.js";
import { Chat } from "./chat.js";
import { Client, type ConnectOptions } from "./client.js";
import { Ghost } from "./ghost.js";

/** A client with its helpers: `chat`, `ghost`, `audio`. */
export interface YamabikoClient extends Client {
  readonly chat: Chat;
  readonly ghost: Ghost;
  readonly audio: Audio;
}

/** Connects to `url` (`ws://host:port/ws`) and initializes a session. */
export async function connect(url: string, options: ConnectOptions): Promise<YamabikoClient> {
  const client = (await Client.connect(url, options)) as YamabikoClient;
  Object.assign(client, { chat: new Chat(client), ghost: new Ghost(client), audio: new Audio(client) });
  return client;
}

export { Client, PROTOCOL_VERSION } from "./client.js";
export type { CallOptions, ClientEvents, ConnectOptions, ReconnectOptions, RequestHandlers, State } from "./client.js";
export { Chat, type ChatStream } from "./chat.js";
export { TextStream } from "./streams.js";
export { Ghost, GhostDocument, codePoints } from "./ghost.js";
export { Audio, AudioStream, Pcm16Decoder, type AudioFrame } from "./audio.js";
export { AudioPlayer, resample, type PlaybackReport } from "./player.js";
export { parseFrame, HEADER_BYTES, type BinaryFrame } from "./frames.js";
export { backoffDelay } from "./backoff.js";
export { tokenExpiry } from "./token.js";
export * from "./errors.js";
export type * from "./generated/types.js";
export { ERROR_MEANINGS, SCHEMA_VERSION } from "./generated/types.js";
