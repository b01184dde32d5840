/**
 * Binary audio frames (docs/audio.md, "Frames"): a 12-byte header, `YA`, version 1,
 * flags (bit 0: the last frame), `streamNo` and `seq` as big-endian uint32, then the
 * payload.
 */
export const HEADER_BYTES = 12;
const MAGIC_Y = 0x59;
const MAGIC_A = 0x41;
const VERSION = 1;
const FLAG_LAST = 1;

export interface BinaryFrame {
  streamNo: number;
  seq: number;
  last: boolean;
  payload: Uint8Array;
}

/** The frame in `data`, or null when it is not one (wrong magic or version, short). */
export function parseFrame(data: ArrayBuffer | Uint8Array): BinaryFrame | null {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < HEADER_BYTES || bytes[0] !== MAGIC_Y || bytes[1] !== MAGIC_A || bytes[2] !== VERSION) {
    return null;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    last: (bytes[3]! & FLAG_LAST) !== 0,
    streamNo: view.getUint32(4),
    seq: view.getUint32(8),
    payload: bytes.subarray(HEADER_BYTES),
  };
}

/** Base64 (as in `audio/frame.data`) to bytes, without Node's Buffer. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
