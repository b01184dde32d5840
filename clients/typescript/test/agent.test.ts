/** client/applyActions answered by the app (agent/run with apply: "client"), and
 * cancelling a request with an AbortSignal. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect, type ApplyActionsParams, type DawContext, type Track } from "yamabiko-client";
import { startServer, within, type Server } from "./support.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

const emptyProject = (): DawContext => ({
  project: { name: "Demo", tempo: 100, key: "C major", timeSignature: "4/4", tracks: [] },
});

/** What a DAW does with each step: applies the actions to its own project. */
function apply(context: DawContext, step: ApplyActionsParams): DawContext {
  const project = structuredClone(context.project);
  for (const action of step.actions) {
    switch (action.type) {
      case "setTempo":
        project.tempo = action.tempo;
        break;
      case "setKey":
        project.key = action.key;
        break;
      case "addTrack": {
        const track: Track = {
          id: action.trackId ?? `t${project.tracks.length + 1}`,
          name: action.name,
          type: action.trackType,
          volume: action.volume ?? 0.8,
          pan: action.pan ?? 0,
          muted: false,
          notes: [],
        };
        project.tracks.push(track);
        break;
      }
      case "addNotes": {
        const track = project.tracks.find((t) => t.id === action.trackId);
        assert.ok(track, `addNotes names a track we have: ${action.trackId}`);
        track.notes = [...(track.notes ?? []), ...action.notes];
        break;
      }
      default:
        throw new Error(`unexpected action ${action.type}`);
    }
  }
  return { ...context, project };
}

test("agent/run with apply: client drives the app's project step by step", async () => {
  let context = emptyProject();
  const steps: number[] = [];
  const client = await connect(server.url, {
    token: server.token(),
    handlers: {
      "client/applyActions": (params) => {
        steps.push(params.step);
        context = apply(context, params);
        return { applied: true, errors: [], context };
      },
    },
  });
  try {
    const result = await client.call("agent/run", {
      prompt: "set the tempo to 128, then add a bassline in A minor on a new track",
      context,
      apply: "client",
    });
    assert.deepEqual(steps, [1, 2]);
    assert.equal(result.steps, 2);
    assert.equal(context.project.tempo, 128);
    const bass = context.project.tracks.find((t) => /bass/i.test(t.name));
    assert.ok(bass, "a bass track was added to the app's project");
    assert.ok((bass.notes ?? []).length > 0, "with notes");
  } finally {
    client.close();
  }
});

test("aborting a request cancels it on the server: no further step is asked for", async () => {
  const controller = new AbortController();
  const steps: number[] = [];
  let context = emptyProject();
  const client = await connect(server.url, {
    token: server.token(),
    handlers: {
      "client/applyActions": (params) => {
        steps.push(params.step);
        context = apply(context, params);
        controller.abort(); // the user pressed Stop while the first step was applied
        return { applied: true, errors: [], context };
      },
    },
  });
  try {
    const run = client.call(
      "agent/run",
      { prompt: "set the tempo to 90, change the key to D minor, add drums", context, apply: "client" },
      { signal: controller.signal },
    );
    await assert.rejects(within(run, "the rejection"), { name: "AbortError" });
    // The cancel went out before our answer to step 1, so the run stopped there: a
    // whole other run later, still no step 2 has been asked for.
    const again = await client.call("agent/run", { prompt: "set the tempo to 120", context: emptyProject() });
    assert.equal(again.actions[0]?.type, "setTempo");
    assert.deepEqual(steps, [1]);
  } finally {
    client.close();
  }
});
