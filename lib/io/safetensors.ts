// The safetensors format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// ({ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": { ... } }, padded
// with spaces to a multiple of 8), then the little-endian tensor bytes, offsets relative
// to the first byte after the header. Files are written atomically (temp file, fsync,
// rename), and loading checks every field before it allocates, so a corrupt or hostile
// file ends in a FormatError that names the file and the problem.

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { endianness } from "node:os";
import { dirname, resolve } from "node:path";

import { allocArray, bytesPerElement, type DType, type TypedArray } from "../dtype.js";
import { FormatError, NotSupportedError, ValueError } from "../errors.js";
import { Tensor, fromTypedArray } from "../tensor.js";

/** A tensor as host values: what the format stores. */
export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TypedArray; // [product of shape], row-major
}

export interface DecodedSafetensors {
  readonly tensors: Record<string, HostTensor>;
  readonly metadata: Record<string, string>;
}

const METADATA_KEY = "__metadata__";
const HEADER_ALIGNMENT = 8;
/** Headers larger than this are refused, as the reference implementation does. */
const MAX_HEADER_BYTES = 100_000_000;

const FORMAT_DTYPES: Record<DType, string> = {
  float32: "F32",
  float64: "F64",
  int32: "I32",
  uint8: "U8",
  bool: "BOOL",
  int8: "I8",
};

const DTYPES_BY_NAME = new Map(
  Object.entries(FORMAT_DTYPES).map(([dtype, name]) => [name, dtype as DType]),
);

/** dtypes of the format that are read by conversion: name -> [bytes per element, target]. */
const CONVERTED_DTYPES = new Map<string, [number, DType]>([
  ["F16", [2, "float32"]],
  ["BF16", [2, "float32"]],
  ["I64", [8, "int32"]],
]);

const UNSUPPORTED_DTYPES = new Set(["U16", "I16", "U32", "U64", "F8_E4M3", "F8_E5M2", "C64"]);

function checkHostEndianness(op: string): void {
  if (endianness() !== "LE") {
    throw new NotSupportedError(op, "safetensors I/O needs a little-endian host");
  }
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function bytesOf(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

// ---------------------------------------------------------------------------------------
// Encoding

function checkEncodeArguments(
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string>,
): void {
  for (const [name, tensor] of Object.entries(tensors)) {
    if (name === METADATA_KEY || name.length === 0) {
      throw new ValueError("saveSafetensors", `"${name}" cannot name a tensor`, "tensors");
    }
    if (tensor.data.length !== numelOf(tensor.shape)) {
      const message = `tensor ${name} has ${tensor.data.length} values for shape [${tensor.shape}]`;
      throw new ValueError("saveSafetensors", message, "tensors");
    }
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      const message = `metadata values must be strings, ${key} is ${typeof value}`;
      throw new ValueError("saveSafetensors", message, "metadata");
    }
  }
}

/** The header bytes: length prefix and JSON padded with spaces to a multiple of 8. */
function encodeHeader(
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const [name, { dtype, shape, data }] of Object.entries(tensors)) {
    const end = offset + data.byteLength;
    header[name] = {
      dtype: FORMAT_DTYPES[dtype],
      shape: [...shape],
      data_offsets: [offset, end],
    };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.length / HEADER_ALIGNMENT) * HEADER_ALIGNMENT;
  const bytes = Buffer.alloc(8 + padded, 0x20);
  bytes.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(bytes, 8);
  return bytes;
}

/** The file as a list of chunks: the header, then each tensor's bytes (views, no copy). */
export function safetensorsChunks(
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  checkHostEndianness("saveSafetensors");
  checkEncodeArguments(tensors, metadata);
  const header = encodeHeader(tensors, metadata);
  return [header, ...Object.values(tensors).map((tensor) => bytesOf(tensor.data))];
}

/** Encodes tensors (packed in insertion order) and string metadata as one buffer. */
export function encodeSafetensors(
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  return Buffer.concat(safetensorsChunks(tensors, metadata));
}

// ---------------------------------------------------------------------------------------
// Decoding

interface EntryLayout {
  readonly name: string;
  readonly formatDType: string;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

/** Throws FormatError for `source` (a path, or a label for an in-memory buffer). */
function fail(source: string, problem: string): never {
  throw new FormatError("loadSafetensors", `${source}: ${problem}`, source);
}

/** A file whose first 8 bytes cannot be a safetensors header length: most likely another kind. */
function failNotSafetensors(source: string, problem: string): never {
  fail(source, `not a safetensors file: ${problem}`);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** Splits the file into its parsed JSON header and its data section. */
function splitFile(bytes: Uint8Array, source: string): { header: object; data: Uint8Array } {
  if (bytes.length < 8) failNotSafetensors(source, `file is ${bytes.length} bytes, shorter than 8`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    const after = bytes.length - 8;
    failNotSafetensors(source, `header length ${headerLength} exceeds the ${after} bytes after it`);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(source, `header length ${headerLength} exceeds the limit of ${MAX_HEADER_BYTES}`);
  }
  const end = 8 + Number(headerLength);
  return {
    header: parseHeader(bytes.subarray(8, end), source),
    data: bytes.subarray(end),
  };
}

function parseHeader(bytes: Uint8Array, source: string): object {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    fail(source, `header is not valid UTF-8 JSON (${reason})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    fail(source, "header is not a JSON object");
  }
  return parsed;
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  const valid =
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === "string");
  if (!valid) fail(source, `${METADATA_KEY} must map strings to strings`);
  return { ...(value as Record<string, string>) };
}

function parseEntry(name: string, value: unknown, source: string): EntryLayout {
  const entry = (typeof value === "object" && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  // Assigning this name to a record would replace its prototype instead of adding a key.
  if (name === "__proto__") fail(source, "a tensor named __proto__ cannot be loaded");
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== "string") fail(source, `tensor ${name} has no dtype string`);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    fail(source, `tensor ${name}: shape must be a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    fail(source, `tensor ${name}: data_offsets must be two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(source, `tensor ${name}: data_offsets [${begin}, ${end}] are reversed`);
  return { name, formatDType: dtype, shape: shape as number[], begin, end };
}

/** The stored bytes per element of a format dtype, and the dtype it loads as. */
function resolveDType(layout: EntryLayout, source: string): [number, DType] {
  const direct = DTYPES_BY_NAME.get(layout.formatDType);
  if (direct !== undefined) return [bytesPerElement(direct), direct];
  const converted = CONVERTED_DTYPES.get(layout.formatDType);
  if (converted !== undefined) return converted;
  if (UNSUPPORTED_DTYPES.has(layout.formatDType)) {
    const message = `${source}: tensor ${layout.name} has dtype ${layout.formatDType}, not loaded`;
    throw new NotSupportedError("loadSafetensors", message);
  }
  return fail(source, `tensor ${layout.name} has unknown dtype ${layout.formatDType}`);
}

function checkSize(layout: EntryLayout, itemBytes: number, dataBytes: number, source: string) {
  const { name, shape, begin, end } = layout;
  const expected = numelOf(shape) * itemBytes;
  if (end - begin !== expected) {
    const detail = `shape [${shape.join(", ")}] of ${layout.formatDType} needs ${expected}`;
    fail(
      source,
      `tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ${detail}`,
    );
  }
  if (end > dataBytes) {
    fail(source, `tensor ${name}: data_offsets end ${end} beyond the ${dataBytes} data bytes`);
  }
}

/** Tensors must tile the data section: sorted by offset, no overlap, no gap. */
function checkTiling(layouts: EntryLayout[], dataBytes: number, source: string): void {
  const sorted = [...layouts].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = "the header";
  for (const { name, begin, end } of sorted) {
    if (begin < covered) fail(source, `tensor ${name} overlaps ${previous}`);
    if (begin > covered) fail(source, `${begin - covered} unused bytes before tensor ${name}`);
    covered = end;
    previous = `tensor ${name}`;
  }
  if (covered !== dataBytes) {
    fail(source, `tensors cover ${covered} of the ${dataBytes} data bytes`);
  }
}

/** Decodes a whole safetensors file held in memory; `source` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, source = "<buffer>"): DecodedSafetensors {
  checkHostEndianness("loadSafetensors");
  const { header, data } = splitFile(bytes, source);
  let metadata: Record<string, string> = {};
  const layouts: EntryLayout[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value, source);
    else layouts.push(parseEntry(name, value, source));
  }
  const dtypes = layouts.map((layout) => resolveDType(layout, source));
  layouts.forEach((layout, i) => checkSize(layout, dtypes[i]![0], data.length, source));
  checkTiling(layouts, data.length, source);

  const tensors: Record<string, HostTensor> = {};
  layouts.forEach((layout, i) => {
    tensors[layout.name] = readTensor(layout, dtypes[i]![1], data, source);
  });
  return { tensors, metadata };
}

/** Copies a tensor's bytes out of the file, so the result is aligned and owns its memory. */
function readTensor(layout: EntryLayout, dtype: DType, data: Uint8Array, source: string) {
  const bytes = data.subarray(layout.begin, layout.end);
  const numel = numelOf(layout.shape);
  const out = allocArray(dtype, numel);
  switch (layout.formatDType) {
    case "F16":
      halfToFloat(bytes, out as Float32Array);
      break;
    case "BF16":
      bfloat16ToFloat(bytes, out as Float32Array);
      break;
    case "I64":
      int64ToInt32(bytes, out as Int32Array, layout.name, source);
      break;
    default:
      bytesOf(out).set(bytes);
  }
  return { dtype, shape: layout.shape, data: out };
}

function halfToFloat(bytes: Uint8Array, out: Float32Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) {
    const half = view.getUint16(2 * i, true);
    const sign = half & 0x8000 ? -1 : 1;
    const exponent = (half >> 10) & 0x1f;
    const fraction = half & 0x3ff;
    if (exponent === 0) out[i] = sign * fraction * 2 ** -24;
    else if (exponent === 31) out[i] = fraction === 0 ? sign * Infinity : NaN;
    else out[i] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
}

function bfloat16ToFloat(bytes: Uint8Array, out: Float32Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
}

function int64ToInt32(bytes: Uint8Array, out: Int32Array, name: string, source: string): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) {
    const value = view.getBigInt64(8 * i, true);
    if (value < -2147483648n || value > 2147483647n) {
      fail(source, `tensor ${name} (I64) holds ${value} at ${i}, outside the int32 range`);
    }
    out[i] = Number(value);
  }
}

/** Reads only the header of a file: tensor layouts are skipped, metadata returned. */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  const fd = fs.openSync(path, "r");
  try {
    const prefix = Buffer.alloc(8);
    const got = fs.readSync(fd, prefix, 0, 8, 0);
    if (got < 8) failNotSafetensors(path, `file is ${got} bytes, shorter than 8`);
    const headerLength = prefix.readBigUInt64LE(0);
    const fileBytes = fs.fstatSync(fd).size;
    if (headerLength > BigInt(Math.min(fileBytes - 8, MAX_HEADER_BYTES))) {
      const after = fileBytes - 8;
      failNotSafetensors(path, `header length ${headerLength} exceeds the ${after} bytes after it`);
    }
    const header = Buffer.alloc(Number(headerLength));
    fs.readSync(fd, header, 0, header.length, 8);
    const parsed = parseHeader(header, path) as Record<string, unknown>;
    return METADATA_KEY in parsed ? parseMetadata(parsed[METADATA_KEY], path) : {};
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------
// Atomic files

function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
}

/**
 * Makes `dir` and the folders missing on the way to it, one at a time from the top, so that
 * a folder that cannot be made fails with its own error (Node's recursive mkdir loops for
 * ever on some, such as one under /proc).
 */
export function makeFoldersSync(dir: string): void {
  const missing: string[] = [];
  for (let at = resolve(dir); !fs.existsSync(at); at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break;
  }
  for (const folder of missing.reverse()) {
    try {
      fs.mkdirSync(folder);
    } catch (error) {
      // Another process made it meanwhile: that is what was wanted.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EEXIST" || !fs.statSync(folder).isDirectory()) throw error;
    }
  }
}

/** fsyncs a directory so a rename in it is durable; some platforms refuse, which is fine. */
export function syncDirectorySync(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Directories cannot be opened or fsynced on every platform (Windows).
  }
}

/**
 * Writes `chunks` to `path` atomically: into a temp file beside it, fsynced, then renamed
 * over `path`. On any failure (including one thrown while producing chunks) the temp file
 * is removed and `path` keeps its old contents.
 */
export function writeFileAtomicSync(path: string, chunks: Iterable<Uint8Array>): void {
  const temp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = fs.openSync(temp, "wx");
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length;) {
        done += fs.writeSync(fd, chunk, done, chunk.length - done);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(temp, path);
  } catch (error) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw error;
  }
  syncDirectorySync(dirname(path));
}

/** The asynchronous form of writeFileAtomicSync: the same steps, off the JS thread. */
export async function writeFileAtomic(path: string, chunks: Iterable<Uint8Array>): Promise<void> {
  const temp = tempPathFor(path);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(temp, "wx");
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length;) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
        done += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fsp.rm(temp, { force: true });
    throw error;
  }
  syncDirectorySync(dirname(path));
}

// ---------------------------------------------------------------------------------------
// Tensors

function toHost(tensors: Record<string, Tensor>): Record<string, HostTensor> {
  const host: Record<string, HostTensor> = {};
  for (const [name, tensor] of Object.entries(tensors)) {
    if (!(tensor instanceof Tensor)) {
      const message = `tensors["${name}"] is not a Tensor (got ${typeof tensor})`;
      throw new ValueError("saveSafetensors", message, "tensors");
    }
    host[name] = {
      dtype: tensor.dtype,
      shape: tensor.shape,
      data: tensor.dataSync(),
    };
  }
  return host;
}

function toTensors(
  decoded: DecodedSafetensors,
  device: string | undefined,
): Record<string, Tensor> {
  const tensors: Record<string, Tensor> = {};
  for (const [name, { dtype, shape, data }] of Object.entries(decoded.tensors)) {
    tensors[name] = fromTypedArray(
      data,
      shape,
      device === undefined ? { dtype } : { device, dtype },
    );
  }
  return tensors;
}

export interface LoadSafetensorsOptions {
  /** Device of the loaded tensors; default: the default device. */
  readonly device?: string;
}

/** Saves tensors (packed in insertion order) and string metadata to `path`, atomically. */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const chunks = safetensorsChunks(toHost(tensors), metadata);
  await writeFileAtomic(path, chunks).catch((error: unknown) => {
    throw unwritable("saveSafetensors", path, error);
  });
}

export function saveSafetensorsSync(
  path: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const chunks = safetensorsChunks(toHost(tensors), metadata);
  try {
    writeFileAtomicSync(path, chunks);
  } catch (error) {
    throw unwritable("saveSafetensorsSync", path, error);
  }
}

/**
 * Loads every tensor of a safetensors file. F16 and BF16 load as float32 and I64 as int32
 * (values outside its range are a FormatError); metadata is read by readSafetensorsMetadata.
 */
export async function loadSafetensors(
  path: string,
  options: LoadSafetensorsOptions = {},
): Promise<Record<string, Tensor>> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(path);
  } catch (error) {
    throw unreadable("loadSafetensors", path, error);
  }
  return toTensors(decodeSafetensors(bytes, path), options.device);
}

export function loadSafetensorsSync(
  path: string,
  options: LoadSafetensorsOptions = {},
): Record<string, Tensor> {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (error) {
    throw unreadable("loadSafetensorsSync", path, error);
  }
  return toTensors(decodeSafetensors(bytes, path), options.device);
}

/**
 * A write that failed, named by the path asked for (not the temporary file written first): a
 * ValueError where the path cannot hold a file, else the system's error with that message.
 */
function unwritable(op: string, path: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    ENOENT: "its folder does not exist",
    ENOTDIR: "a part of the path is a file, not a folder",
    EISDIR: "is a folder",
  };
  // ENOENT from a folder that is there (a read-only system one) says nothing of the folder.
  const folderMissing = code !== "ENOENT" || !fs.existsSync(dirname(resolve(path)));
  if (code !== undefined && code in why && folderMissing) {
    return new ValueError(op, `cannot write ${path}: ${why[code]}`, "path");
  }
  if (error instanceof Error) error.message = `${op}: cannot write ${path}: ${error.message}`;
  return error as Error;
}

/** A FormatError for a file the OS would not read: missing, a folder, not permitted. */
function unreadable(op: string, path: string, error: unknown): FormatError {
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === "ENOENT"
      ? "no such file"
      : code === "EISDIR"
        ? "is a folder, not a file"
        : code === "EACCES"
          ? "permission denied"
          : (error as Error).message;
  return new FormatError(op, `${path}: cannot be read: ${why}`, path);
}
