/**
 * Ghost text bound to a text field (docs/ghost.md).
 *
 * The document keeps the text and its version as the server knows them. Each edit
 * becomes one `ghost/change` with the next version; suggestions are shown only when
 * they are for the current version (an older one is never shown, so grey text never
 * lags the caret). Positions in this API are JavaScript string indices (what
 * `selectionStart` gives); the wire counts Unicode code points, and the conversion
 * happens here.
 */
import type { Client } from "./client.js";
import { Emitter } from "./emitter.js";
import type { OpenParams, Suggestion, SuggestionsParams } from "./generated/types.js";

/** Code points in `text` before string index `index`. */
export function codePoints(text: string, index: number): number {
  let n = 0;
  for (let i = 0; i < index; i++) {
    const c = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < index) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;

export interface GhostEvents {
  /** The suggestions for the current version (empty: clear the grey text). */
  suggestions: Suggestion[];
  /** The server lost track of the text; the document sent it whole. */
  resync: { reason: string };
}

export class GhostDocument {
  readonly events = new Emitter<GhostEvents>();
  /** Suggestions for the current version; empty when there are none (yet). */
  suggestions: Suggestion[] = [];
  private closed = false;

  constructor(
    private readonly client: Client,
    private readonly owner: Ghost,
    readonly docId: string,
    private text_: string,
    private version_: number,
    private cursor_: number,
    private readonly openParams: OpenParams,
  ) {}

  get text(): string {
    return this.text_;
  }
  get version(): number {
    return this.version_;
  }
  /** The caret, as a string index. */
  get cursor(): number {
    return this.cursor_;
  }

  /** The field now holds `value` with the caret at `cursor` (default: its end): the
   * difference from the text before is sent as one change. Call it on each input
   * event. */
  update(value: string, cursor = value.length): void {
    const old = this.text_;
    if (value === old) {
      if (cursor !== this.cursor_) this.moveCursor(cursor);
      return;
    }
    let start = 0;
    const max = Math.min(old.length, value.length);
    while (start < max && old.charCodeAt(start) === value.charCodeAt(start)) start++;
    let tail = 0;
    while (
      tail < max - start &&
      old.charCodeAt(old.length - 1 - tail) === value.charCodeAt(value.length - 1 - tail)
    ) {
      tail++;
    }
    // Never split a surrogate pair: the server counts code points.
    if (start > 0 && isHigh(old.charCodeAt(start - 1))) start--;
    if (tail > 0 && isLow(old.charCodeAt(old.length - tail))) tail--;
    this.replace(start, old.length - tail, value.slice(start, value.length - tail), cursor);
  }

  /** Replaces `[start, end)` with `insert`; the caret goes to `cursor` (default: the
   * end of the inserted text). */
  replace(start: number, end: number, insert: string, cursor = start + insert.length): void {
    const old = this.text_;
    if (start < 0 || end < start || end > old.length) throw new RangeError(`replace(${start}, ${end}) outside the text`);
    const change = { start: codePoints(old, start), end: codePoints(old, end), text: insert };
    this.text_ = old.slice(0, start) + insert + old.slice(end);
    this.cursor_ = cursor;
    this.version_++;
    this.clear();
    const defaultCursor = start + insert.length;
    this.send({
      docId: this.docId,
      version: this.version_,
      changes: [change],
      ...(cursor === defaultCursor ? {} : { cursor: codePoints(this.text_, cursor) }),
    });
  }

  /** The caret moved without an edit (it takes the next version, docs/ghost.md). */
  moveCursor(cursor: number): void {
    this.cursor_ = cursor;
    this.version_++;
    this.clear();
    this.send({ docId: this.docId, version: this.version_, cursor: codePoints(this.text_, cursor) });
  }

  /** Accepts a suggestion (default: the first) whole: inserts it at the caret and
   * reports `accepted`. Returns the inserted text, or null when there is none. */
  accept(suggestionId?: string): string | null {
    const s = this.find(suggestionId);
    if (!s) return null;
    this.client.notify("ghost/feedback", { docId: this.docId, suggestionId: s.id, action: "accepted" });
    this.replace(this.cursor_, this.cursor_, s.text);
    return s.text;
  }

  /** Accepts the start of a suggestion: `text` (a prefix of it) or, by default, its
   * next word with the space before it (Ctrl+Right in most editors). */
  acceptPartial(suggestionId?: string, text?: string): string | null {
    const s = this.find(suggestionId);
    if (!s) return null;
    const part = text ?? /^\s*\S+/.exec(s.text)?.[0] ?? s.text;
    if (!s.text.startsWith(part)) throw new RangeError("acceptPartial: not a prefix of the suggestion");
    this.client.notify("ghost/feedback", {
      docId: this.docId,
      suggestionId: s.id,
      action: part === s.text ? "accepted" : "partial",
      ...(part === s.text ? {} : { acceptedText: part }),
    });
    this.replace(this.cursor_, this.cursor_, part);
    return part;
  }

  /** The user dismissed the suggestion (Escape): reports `rejected` and clears it. */
  reject(suggestionId?: string): void {
    const s = this.find(suggestionId);
    if (!s) return;
    this.client.notify("ghost/feedback", { docId: this.docId, suggestionId: s.id, action: "rejected" });
    this.clear();
  }

  /** Closes the document on the server (`ghost/close`). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.owner.forget(this);
    await this.client.call("ghost/close", { docId: this.docId }).catch(() => undefined);
  }

  // -- from the ghost registry --------------------------------------------------------

  /** @internal */
  received(params: SuggestionsParams): void {
    if (params.version !== this.version_) return; // overtaken by a later edit
    this.suggestions = params.items;
    this.events.emit("suggestions", this.suggestions);
  }

  /** @internal The server cannot apply a change: send the whole text as the next version. */
  resync(reason: string): void {
    this.version_++;
    this.clear();
    this.send({ docId: this.docId, version: this.version_, text: this.text_, cursor: codePoints(this.text_, this.cursor_) });
    this.events.emit("resync", { reason });
  }

  /** @internal A new session has no documents: open this one again with its text. */
  async reopen(): Promise<void> {
    const text = this.text_;
    const result = await this.client.call("ghost/open", {
      ...this.openParams,
      docId: this.docId,
      text,
      cursor: codePoints(text, this.cursor_),
    });
    this.version_ = result.version;
    this.clear();
    // Edits typed while the open was on its way were not sent: send the text whole.
    if (this.text_ !== text) this.resync("edited while reopening");
  }

  private find(id?: string): Suggestion | undefined {
    return id === undefined ? this.suggestions[0] : this.suggestions.find((s) => s.id === id);
  }

  private clear(): void {
    if (this.suggestions.length === 0) return;
    this.suggestions = [];
    this.events.emit("suggestions", this.suggestions);
  }

  private send(params: Parameters<Client["notify"]>[1] & { docId: string; version: number }): void {
    this.client.notify("ghost/change", params);
  }
}

/** The session's documents: routes suggestions and resyncs, reopens after reconnects. */
export class Ghost {
  private docs = new Map<string, GhostDocument>();
  /** Suggestions for version 0 can overtake the `ghost/open` result: the newest per
   * unknown document waits here (bounded) until the document is known. */
  private early = new Map<string, SuggestionsParams>();

  constructor(private readonly client: Client) {
    client.on("ghost/suggestions", (p) => {
      const doc = this.docs.get(p.docId);
      if (doc) return doc.received(p);
      this.early.set(p.docId, p);
      if (this.early.size > 32) this.early.delete(this.early.keys().next().value as string);
    });
    client.on("ghost/resync", (p) => this.docs.get(p.docId)?.resync(p.reason));
    client.onSession(async () => {
      const results = await Promise.allSettled([...this.docs.values()].map((d) => d.reopen()));
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
    });
  }

  /** Opens a document (`ghost/open`) holding `text`, the caret at its end. */
  async open(params: OpenParams = {}): Promise<GhostDocument> {
    const text = params.text ?? "";
    const cursor = params.cursor ?? text.length;
    const result = await this.client.call("ghost/open", { ...params, text, cursor: codePoints(text, cursor) });
    const doc = new GhostDocument(this.client, this, result.docId, text, result.version, cursor, params);
    this.docs.set(doc.docId, doc);
    const early = this.early.get(doc.docId);
    this.early.delete(doc.docId);
    if (early) doc.received(early);
    return doc;
  }

  /** @internal */
  forget(doc: GhostDocument): void {
    if (this.docs.get(doc.docId) === doc) this.docs.delete(doc.docId);
  }
}
