// The playground: a small DAW on yamabiko-client, bundled into the server's page by
// scripts/playground.mjs (yamabiko/server/playground/index.html; docs/playground.md).
// The project lives here; the agent edits it through client/applyActions as a DAW's
// own model would be edited, and every element the test reads carries data-*.
import {
  AudioPlayer,
  connect,
  type AudioStream,
  type ChatStream,
  type DawContext,
  type GhostDocument,
  type ApplyActionsParams,
  type Note,
  type Project,
  type Track,
  type YamabikoClient,
} from "../src/index.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const project: Project = { name: "Playground", tempo: 120, key: "A minor", timeSignature: "4/4", tracks: [] };
let client: YamabikoClient | null = null;
let prompt: GhostDocument | null = null;
let chat: ChatStream | null = null;
let nextTrack = 1;
let nextNote = 1;

function setStatus(text: string, state: string): void {
  const s = $("status");
  s.textContent = text;
  s.dataset["state"] = state;
}

// -- the project -----------------------------------------------------------------

function context(): DawContext {
  return { project: structuredClone(project) };
}

function track(id: string): Track {
  const t = project.tracks.find((x) => x.id === id);
  if (!t) throw new Error(`no track ${id}`);
  return t;
}

/** Applies one step of the agent's actions, as the DAW's edit model would; returns
 * the problems (the server validated them against our context already). */
function apply(actions: ApplyActionsParams["actions"]): string[] {
  const errors: string[] = [];
  for (const a of actions) {
    try {
      switch (a.type) {
        case "addTrack":
          project.tracks.push({
            id: a.trackId ?? `t${nextTrack++}`,
            name: a.name,
            type: a.trackType,
            volume: a.volume ?? 0.8,
            pan: a.pan ?? 0,
            muted: false,
            notes: [],
          });
          break;
        case "deleteTrack":
          project.tracks = project.tracks.filter((t) => t.id !== a.trackId);
          break;
        case "addNotes":
          track(a.trackId).notes = [...(track(a.trackId).notes ?? []), ...a.notes.map(withId)];
          break;
        case "updateNotes":
          for (const u of a.notes) {
            const n = (track(a.trackId).notes ?? []).find((x) => x.id === u.id);
            if (n) Object.assign(n, Object.fromEntries(Object.entries(u).filter(([, v]) => v != null)));
          }
          break;
        case "deleteNotes":
          track(a.trackId).notes = (track(a.trackId).notes ?? []).filter((n) => !a.noteIds.includes(n.id ?? ""));
          break;
        case "setTempo":
          project.tempo = a.tempo;
          break;
        case "setKey":
          project.key = a.key;
          break;
        case "setTrackParams": {
          const t = track(a.trackId);
          if (a.name != null) t.name = a.name;
          if (a.volume != null) t.volume = a.volume;
          if (a.pan != null) t.pan = a.pan;
          if (a.muted != null) t.muted = a.muted;
          break;
        }
        case "addEffect":
          track(a.trackId).effects = [...(track(a.trackId).effects ?? []), { effect: a.effect, params: a.params ?? {} }];
          break;
      }
    } catch (e) {
      errors.push(`${a.type}: ${(e as Error).message}`);
    }
  }
  render();
  return errors;
}

const withId = (n: Note): Note => ({ ...n, id: n.id ?? `n${nextNote++}` });

// -- rendering -------------------------------------------------------------------

function render(): void {
  ($("tempo") as HTMLInputElement).value = String(project.tempo);
  ($("key") as HTMLInputElement).value = project.key;
  const list = $("tracks");
  list.replaceChildren(...project.tracks.map(row));
  list.dataset["count"] = String(project.tracks.length);
}

function row(t: Track): HTMLElement {
  const div = document.createElement("div");
  div.className = "track";
  div.dataset["trackId"] = t.id;
  div.dataset["type"] = t.type;
  div.dataset["muted"] = String(t.muted);
  const name = Object.assign(document.createElement("input"), { className: "name", value: t.name });
  name.onchange = () => (t.name = name.value || t.name);
  const type = document.createElement("select");
  for (const kind of ["midi", "drum", "audio"] as const) type.add(new Option(kind, kind, false, kind === t.type));
  type.onchange = () => {
    t.type = type.value as Track["type"];
    render();
  };
  const mute = Object.assign(document.createElement("input"), { type: "checkbox", checked: t.muted });
  mute.onchange = () => {
    t.muted = mute.checked;
    render();
  };
  const muteLabel = document.createElement("label");
  muteLabel.append(mute, " mute");
  const generate = Object.assign(document.createElement("button"), { textContent: "Generate", className: "generate" });
  generate.onclick = () => void fill(t);
  div.append(name, type, muteLabel, generate, roll(t));
  return div;
}

/** A piano roll: time across (beats), pitch up; `data-notes` for the test. */
function roll(t: Track): HTMLCanvasElement {
  const canvas = document.createElement("canvas");
  canvas.width = 640;
  canvas.height = 72;
  const notes = t.notes ?? [];
  canvas.dataset["notes"] = String(notes.length);
  const ctx = canvas.getContext("2d");
  if (!ctx || notes.length === 0) return canvas;
  const end = Math.max(...notes.map((n) => n.start + n.duration), 4);
  const low = Math.min(...notes.map((n) => n.pitch));
  const high = Math.max(...notes.map((n) => n.pitch), low + 12);
  const h = canvas.height / (high - low + 1);
  ctx.fillStyle = t.type === "drum" ? "#c60" : "#36c";
  for (const n of notes) {
    ctx.fillRect((n.start / end) * canvas.width, canvas.height - (n.pitch - low + 1) * h, Math.max(2, (n.duration / end) * canvas.width - 1), Math.max(2, h - 1));
  }
  return canvas;
}

// -- actions ---------------------------------------------------------------------

/** Every control needs a session: before one, say so rather than do nothing. */
function notConnected(): void {
  setStatus("connect first: press Dev token (a local dev server) or paste a token", "error");
}

async function fill(t: Track): Promise<void> {
  if (!client) return notConnected();
  const kind = t.type === "drum" ? "drum_pattern" : /bass/i.test(t.name) ? "bassline" : "melody";
  const result = await client.call("music/generate", { kind, key: project.key, tempo: project.tempo, bars: 2 });
  t.notes = result.notes.map(withId);
  render();
}

async function ask(): Promise<void> {
  if (!client || !prompt) return notConnected();
  const text = prompt.text.trim();
  if (!text) return;
  const out = $("agent");
  out.textContent = "working…";
  const result = await client.call("agent/run", { prompt: text, context: context(), apply: "client", maxSteps: 5 }, { timeoutMs: 60_000 });
  out.textContent = result.summary;
  out.dataset["steps"] = String(result.steps);
}

async function sing(): Promise<void> {
  if (!client) return notConnected();
  const status = $("audio");
  let melody = project.tracks.find((t) => t.type === "midi" && !/bass/i.test(t.name) && (t.notes ?? []).length > 0);
  if (!melody) {
    const t: Track = { id: `t${nextTrack++}`, name: "Melody", type: "midi", volume: 0.8, pan: 0, muted: false, notes: [] };
    project.tracks.push(t);
    await fill(t);
    melody = t;
  }
  // One voice sings one note at a time: keep the notes that start after the last ends.
  const notes: Note[] = [];
  for (const n of [...(melody.notes ?? [])].sort((a, b) => a.start - b.start)) {
    const last = notes.at(-1);
    if (!last || n.start >= last.start + last.duration) notes.push(n);
  }
  const lyrics = ($("lyrics") as HTMLInputElement).value.trim() || null;
  status.dataset["state"] = "streaming";
  status.dataset["frames"] = "0";
  const stream = await client.audio.synthesize({
    notes: notes.slice(0, 16).map((n) => ({ pitch: n.pitch, start: n.start, duration: n.duration, velocity: n.velocity })),
    lyrics,
    tempo: project.tempo,
    format: "pcm16",
    pace: "realtime",
  });
  const counter = setInterval(() => (status.dataset["frames"] = String(stream.frames)), 50);
  const report = await play(stream);
  clearInterval(counter);
  const end = await stream.end;
  Object.assign(status.dataset, {
    frames: String(stream.frames),
    total: String(end.frames),
    durationMs: String(end.durationMs),
    played: String(report.played),
    playedMs: String(Math.round((report.played / report.rate) * 1000)),
    underruns: String(report.underruns),
    player: report.player,
    state: "ended",
  });
  status.textContent = `${end.frames} frames, ${end.durationMs} ms sung (${report.player})`;
}

/** Plays through the client's player (its AudioWorklet, or scheduled buffers where the
 * page's CSP refuses the worklet's module). */
async function play(stream: AudioStream): Promise<{ played: number; underruns: number; rate: number; player: string }> {
  const ctx = new AudioContext({ sampleRate: stream.info?.sampleRate ?? 24000 });
  await ctx.resume();
  try {
    const report = await new AudioPlayer(ctx).play(stream);
    return { ...report, rate: ctx.sampleRate, player: report.mode };
  } finally {
    void ctx.close();
  }
}

async function send(): Promise<void> {
  if (!client) return notConnected();
  const reply = $("reply");
  reply.textContent = "";
  reply.dataset["state"] = "streaming";
  delete reply.dataset["finish"];
  ($("cancel") as HTMLButtonElement).disabled = false;
  chat = await client.chat.send({ message: ($("message") as HTMLInputElement).value });
  for await (const text of chat) reply.textContent += text;
  const end = await chat.end;
  reply.dataset["state"] = "ended";
  reply.dataset["finish"] = end.finishReason;
  ($("cancel") as HTMLButtonElement).disabled = true;
  chat = null;
}

// -- ghost text in the prompt box ---------------------------------------------------

function drawGhost(): void {
  const overlay = $("overlay");
  const area = $("prompt") as HTMLTextAreaElement;
  const suggestion = prompt?.suggestions[0]?.text ?? "";
  const grey = document.createElement("span");
  grey.id = "ghost-suggestion";
  grey.textContent = suggestion;
  overlay.replaceChildren(document.createTextNode(area.value.slice(0, area.selectionStart)), grey);
}

async function openPrompt(c: YamabikoClient): Promise<void> {
  const area = $("prompt") as HTMLTextAreaElement;
  prompt = await c.ghost.open({ text: area.value, kind: "prompt", cursor: area.selectionStart });
  prompt.events.on("suggestions", drawGhost);
  area.addEventListener("input", () => {
    prompt?.update(area.value, area.selectionStart);
    drawGhost();
  });
  area.addEventListener("keydown", (e) => {
    if (!prompt) return;
    if (e.key === "Tab" && prompt.suggestions.length > 0) {
      e.preventDefault();
      prompt.accept();
      area.value = prompt.text;
      area.selectionStart = area.selectionEnd = prompt.cursor;
      drawGhost();
    } else if (e.key === "Escape") {
      prompt.reject();
      drawGhost();
    }
  });
}

// -- wiring ----------------------------------------------------------------------

async function start(): Promise<void> {
  const token = ($("token") as HTMLInputElement).value.trim();
  if (!token) return setStatus("a token is needed", "error");
  client?.close();
  setStatus("connecting…", "connecting");
  try {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const c = await connect(url, {
      token,
      clientInfo: { name: "yamabiko-playground", version: "0.1.0" },
      handlers: {
        "client/applyActions": (params) => {
          const errors = apply(params.actions);
          $("agent").dataset["steps"] = String(params.step);
          return { applied: errors.length === 0, errors, context: context() };
        },
      },
    });
    client = c;
    c.events.on("state", (s) => setStatus(s, s));
    c.events.on("error", (e) => setStatus(e.message, "error"));
    await openPrompt(c);
    setStatus("open", "open");
  } catch (e) {
    setStatus(`could not connect: ${(e as Error).message}`, "error");
  }
}

/** A token from the dev server itself (`GET /dev/token`: local dev servers only). */
async function devToken(): Promise<void> {
  const response = await fetch("/dev/token", { cache: "no-store" });
  if (!response.ok) {
    return setStatus("no dev token here: this server is not a local dev server; paste a token", "error");
  }
  const { token } = (await response.json()) as { token: string };
  ($("token") as HTMLInputElement).value = token;
  await start();
}

function report(task: Promise<void>): void {
  task.catch((e: Error) => setStatus(e.message, "error"));
}

$("connect").onclick = () => report(start());
$("dev-token").onclick = () => report(devToken());
$("ask").onclick = () => report(ask());
$("sing").onclick = () => report(sing());
$("send").onclick = () => report(send());
$("cancel").onclick = () => report(chat ? chat.cancel().then(() => undefined) : Promise.resolve());
$("add-track").onclick = () => {
  project.tracks.push({ id: `t${nextTrack++}`, name: `Track ${nextTrack - 1}`, type: "midi", volume: 0.8, pan: 0, muted: false, notes: [] });
  render();
};
$("tempo").onchange = () => (project.tempo = Number(($("tempo") as HTMLInputElement).value) || project.tempo);
$("key").onchange = () => (project.key = ($("key") as HTMLInputElement).value || project.key);

// A token in the address (?token=…) moves into the field and out of the history.
const params = new URLSearchParams(location.search);
const given = params.get("token");
if (given) {
  ($("token") as HTMLInputElement).value = given;
  history.replaceState(null, "", location.pathname);
  report(start());
}
render();
