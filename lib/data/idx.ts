// The IDX format of the original MNIST files: a big-endian header (two zero bytes, a type
// code, the number of dimensions, then one u32 per dimension) followed by the raw bytes.
// Only unsigned-byte data (type 0x08) is read, which is all MNIST uses. Files may be
// gzipped; every check happens before any allocation sized by the header, so a truncated
// or corrupted file ends in a FormatError, never a crash or a huge allocation.

import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

import { FormatError } from "../errors.js";

/** Magic number of an IDX file of unsigned bytes with three dimensions (images). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic number of an IDX file of unsigned bytes with one dimension (labels). */
export const IDX_LABELS_MAGIC = 0x00000801;

const UNSIGNED_BYTE = 0x08;

/** The contents of an IDX file: its dimensions and its row-major bytes. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array; // [product of dims]
}

function fail(source: string, problem: string): never {
  throw new FormatError("readIdx", `${source}: ${problem}`, source);
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

/** Reads the dimensions after the magic number, checking the header fits in the file. */
function readDims(bytes: Uint8Array, view: DataView, ndims: number, source: string): number[] {
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    fail(source, `header needs ${headerBytes} bytes for ${ndims} dims, file has ${bytes.length}`);
  }
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  return dims;
}

/** Checks the data after the header is exactly as long as the dims say. */
function checkDataLength(bytes: Uint8Array, dims: number[], source: string): number {
  const headerBytes = 4 + 4 * dims.length;
  const available = bytes.length - headerBytes;
  const expected = dims.reduce((product, dim) => product * dim, 1);
  if (expected > available) {
    fail(source, `dims [${dims.join(", ")}] need ${expected} data bytes, file has ${available}`);
  }
  if (expected < available) {
    fail(source, `${available - expected} unexpected bytes after the data of dims [${dims}]`);
  }
  return headerBytes;
}

/**
 * Parses an IDX file of unsigned bytes held in memory. `expectedMagic` (0x00000803 for
 * images, 0x00000801 for labels) is checked when given. The data is a view into `bytes`.
 */
export function parseIdx(bytes: Uint8Array, source: string, expectedMagic?: number): IdxArray {
  if (bytes.length < 4) fail(source, `file is ${bytes.length} bytes, too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (expectedMagic !== undefined && magic !== expectedMagic) {
    fail(source, `magic number ${hex(magic)}, expected ${hex(expectedMagic)}`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) fail(source, `magic number ${hex(magic)} is not IDX`);
  if (bytes[2] !== UNSIGNED_BYTE) {
    fail(source, `data type code 0x${bytes[2]!.toString(16)}, only 0x08 (unsigned byte) is read`);
  }

  const dims = readDims(bytes, view, bytes[3]!, source);
  const headerBytes = checkDataLength(bytes, dims, source);
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Gunzips `bytes` when they start with the gzip signature, else returns them. */
export function maybeGunzip(bytes: Uint8Array, source: string): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return fail(source, `not a valid gzip stream (${reason})`);
  }
}

/** Reads an IDX file, plain or gzipped, from disk. */
export function readIdxFile(path: string, expectedMagic?: number): IdxArray {
  return parseIdx(maybeGunzip(readFileSync(path), path), path, expectedMagic);
}
