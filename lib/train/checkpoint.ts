// Checkpoints: a folder `checkpoint-<step>` holding model.safetensors, optimizer.safetensors,
// best_model.safetensors (when a best model is kept) and trainer_state.json, which lists
// every other file with its size and SHA-256. The folder is written under a temporary name,
// every file fsynced, and renamed into place: the rename is the commit, so a reader sees a
// whole checkpoint or none. Loading checks every file against the list before it is used.

import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { dirname, join } from "node:path";

import type { DType, TypedArray } from "../dtype.js";
import { DeepnodeError } from "../errors.js";
import {
  decodeSafetensors,
  encodeSafetensors,
  makeFoldersSync,
  syncDirectorySync,
  writeFileAtomicSync,
  type HostTensor,
} from "../io/safetensors.js";
import { fromTypedArray, Tensor } from "../tensor.js";

export const CHECKPOINT_FORMAT = "deepnode-checkpoint";
export const CHECKPOINT_VERSION = 1;
export const STATE_FILE = "trainer_state.json";

/**
 * A checkpoint that is missing, incomplete, corrupt or does not fit the run loading it.
 * `cause` is the error underneath, when there is one (a StateDictError with every key).
 */
export class CheckpointError extends DeepnodeError {
  readonly path: string;

  constructor(op: string, path: string, message: string, cause?: unknown) {
    super("ERR_CHECKPOINT", `${path}: ${message}`, op);
    this.path = path;
    if (cause !== undefined) this.cause = cause;
  }
}

export interface FileEntry {
  bytes: number;
  sha256: string;
}

/** What trainer_state.json holds besides the file list; the trainer fills `trainer`. */
export interface CheckpointJson {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  epoch: number;
  globalStep: number;
  rng: { seed: number; offset: number };
  optimizer: { kind: string; paramGroups: { params: number[]; options: object }[] };
  /** Numbers of each parameter's optimizer state (step counts), by parameter index. */
  optimizerNumbers: Record<string, Record<string, number>>;
  scheduler: { kind: string } | null;
  trainer: Record<string, unknown>;
  files: Record<string, FileEntry>;
}

/** A checkpoint in memory: tensor files by name, and the JSON state. */
export interface CheckpointData {
  tensors: Record<string, Record<string, Tensor>>;
  state: Omit<CheckpointJson, "files" | "format" | "version">;
}

export interface SaveHooks {
  /** Called with the temporary folder once every file is written, before the rename. */
  beforeCommit?: (tempDir: string) => void;
  /** Called when an old checkpoint has been renamed aside, before its files are deleted. */
  beforeRemove?: (asideDir: string) => void;
}

const NAME = /^checkpoint-(\d+)$/;
const LEFTOVER = /^checkpoint-\d+\.(tmp|old)-/;

export function checkpointName(globalStep: number): string {
  return `checkpoint-${globalStep}`;
}

function toHost(tensors: Record<string, Tensor>): Record<string, HostTensor> {
  const host: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    host[name] = { dtype: t.dtype, shape: t.shape, data: t.dataSync() };
  }
  return host;
}

/** JSON has no Infinity or NaN (a fresh ReduceLROnPlateau's best is Infinity): tag them. */
const NON_FINITE = "__nonFinite__";

function encodeNumbers(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) return { [NON_FINITE]: String(value) };
  return value;
}

function decodeNumbers(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && NON_FINITE in value) {
    return Number((value as Record<string, string>)[NON_FINITE]);
  }
  return value;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Writes the files of a checkpoint into `dir`, each fsynced; returns the file list. */
function writeFiles(dir: string, data: CheckpointData): Record<string, FileEntry> {
  const files: Record<string, FileEntry> = {};
  for (const [name, tensors] of Object.entries(data.tensors)) {
    const bytes = encodeSafetensors(toHost(tensors), { format: "pt" });
    writeFileAtomicSync(join(dir, name), [bytes]);
    files[name] = { bytes: bytes.length, sha256: sha256(bytes) };
  }
  const json: CheckpointJson = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    ...data.state,
    files,
  };
  writeFileAtomicSync(join(dir, STATE_FILE), [Buffer.from(JSON.stringify(json, encodeNumbers, 1))]);
  return files;
}

/**
 * Saves a checkpoint as `saveDir/checkpoint-<globalStep>` and returns its path. The folder
 * appears whole or not at all; one that already has the name is replaced.
 */
export function saveCheckpoint(saveDir: string, data: CheckpointData, hooks: SaveHooks = {}) {
  makeFoldersSync(saveDir);
  const final = join(saveDir, checkpointName(data.state.globalStep));
  const suffix = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const temp = `${final}.tmp-${suffix}`;
  fs.mkdirSync(temp);
  try {
    writeFiles(temp, data);
    syncDirectorySync(temp);
    hooks.beforeCommit?.(temp);
    commit(temp, final, `${final}.old-${suffix}`);
  } catch (error) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw error;
  }
  syncDirectorySync(saveDir);
  return final;
}

/** Renames temp to final; an existing final is moved aside first and removed after. */
function commit(temp: string, final: string, aside: string): void {
  const replacing = fs.existsSync(final);
  if (replacing) fs.renameSync(final, aside);
  fs.renameSync(temp, final);
  if (replacing) fs.rmSync(aside, { recursive: true, force: true });
}

/** The committed checkpoints of a folder, newest (highest step) first. */
export function listCheckpoints(saveDir: string): string[] {
  if (!fs.existsSync(saveDir)) return [];
  return fs
    .readdirSync(saveDir)
    .map((name) => ({ name, match: NAME.exec(name) }))
    .filter((e) => e.match !== null && fs.statSync(join(saveDir, e.name)).isDirectory())
    .sort((a, b) => Number(b.match![1]) - Number(a.match![1]))
    .map((e) => join(saveDir, e.name));
}

/** Removes folders that a killed save left behind (temporary or set-aside names). */
export function removeLeftovers(saveDir: string): string[] {
  if (!fs.existsSync(saveDir)) return [];
  const removed = fs.readdirSync(saveDir).filter((name) => LEFTOVER.test(name));
  for (const name of removed) fs.rmSync(join(saveDir, name), { recursive: true, force: true });
  return removed;
}

/**
 * Keeps the newest `keep` checkpoints of a folder and removes the rest. Each is renamed to
 * a leftover name first, so that a kill while its files are deleted cannot leave a partial
 * folder under a checkpoint's name (removeLeftovers clears it later).
 */
export function rotateCheckpoints(saveDir: string, keep: number, hooks: SaveHooks = {}): void {
  for (const old of listCheckpoints(saveDir).slice(keep)) {
    const aside = `${old}.old-${process.pid}-${randomBytes(4).toString("hex")}`;
    fs.renameSync(old, aside);
    hooks.beforeRemove?.(aside);
    fs.rmSync(aside, { recursive: true, force: true });
  }
}

/**
 * Where a run resumed from `path` writes its new checkpoints: the run's folder, which is
 * `path` itself, or its parent when `path` is one checkpoint (it holds trainer_state.json).
 * Writing into the checkpoint itself would nest checkpoints that no later resume finds.
 */
export function checkpointFolderOf(path: string): string {
  return fs.existsSync(join(path, STATE_FILE)) ? dirname(path) : path;
}

/**
 * The checkpoint to resume from: `path` itself when it holds trainer_state.json, else the
 * newest checkpoint-<step> folder inside it.
 */
export function resolveCheckpoint(path: string): string {
  if (!fs.existsSync(path)) {
    throw new CheckpointError("resume", path, "no such checkpoint or folder");
  }
  if (!fs.statSync(path).isDirectory()) {
    throw new CheckpointError("resume", path, "is a file, not a checkpoint or a folder of them");
  }
  if (fs.existsSync(join(path, STATE_FILE))) return path;
  const newest = listCheckpoints(path)[0];
  if (newest === undefined) {
    throw new CheckpointError(
      "resume",
      path,
      `holds neither ${STATE_FILE} nor a checkpoint-<step> folder`,
    );
  }
  return newest;
}

/** A parser's message on one line: JSON.parse quotes the bad text, newlines and all. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, " ").trim();
}

/** A checkpoint's trainer_state.json, checked for the fields every checkpoint has. */
export function readState(dir: string): CheckpointJson {
  const file = join(dir, STATE_FILE);
  if (!fs.existsSync(file))
    throw new CheckpointError("loadCheckpoint", dir, `${STATE_FILE} is missing`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"), decodeNumbers);
  } catch (error) {
    throw new CheckpointError(
      "loadCheckpoint",
      dir,
      `${STATE_FILE} is not valid JSON: ${oneLine((error as Error).message)}`,
    );
  }
  checkStateShape(dir, json);
  return json;
}

function checkStateShape(dir: string, json: unknown): asserts json is CheckpointJson {
  const fail = (problem: string): never => {
    throw new CheckpointError("loadCheckpoint", dir, `${STATE_FILE} ${problem}`);
  };
  if (typeof json !== "object" || json === null) fail("is not an object");
  const state = json as Partial<CheckpointJson>;
  if (state.format !== CHECKPOINT_FORMAT)
    fail(`has format ${JSON.stringify(state.format)}, not "${CHECKPOINT_FORMAT}"`);
  if (state.version !== CHECKPOINT_VERSION)
    fail(`has version ${String(state.version)}; this deepnode reads version ${CHECKPOINT_VERSION}`);
  for (const key of ["epoch", "globalStep"] as const) {
    if (!Number.isSafeInteger(state[key]) || state[key]! < 0) fail(`has no valid ${key}`);
  }
  for (const key of ["rng", "optimizer", "optimizerNumbers", "trainer", "files"] as const) {
    if (typeof state[key] !== "object" || state[key] === null) fail(`has no ${key}`);
  }
}

/** The bytes of one listed file, checked to be present, of its size and its SHA-256. */
function readCheckedFile(dir: string, name: string, entry: FileEntry): Buffer {
  const path = join(dir, name);
  if (!fs.existsSync(path)) throw new CheckpointError("loadCheckpoint", dir, `${name} is missing`);
  const bytes = fs.readFileSync(path);
  if (bytes.length !== entry.bytes) {
    throw new CheckpointError(
      "loadCheckpoint",
      dir,
      `${name} has ${bytes.length} bytes, ${STATE_FILE} says ${entry.bytes}`,
    );
  }
  if (sha256(bytes) !== entry.sha256) {
    throw new CheckpointError(
      "loadCheckpoint",
      dir,
      `${name} does not match its SHA-256 in ${STATE_FILE} (the file is corrupt)`,
    );
  }
  return bytes;
}

/**
 * Checks every file a checkpoint lists (present, whole, unchanged) without decoding one, so
 * that a caller can refuse a damaged checkpoint before building anything.
 */
export function checkCheckpointFiles(dir: string, files: Record<string, FileEntry>): void {
  for (const [name, entry] of Object.entries(files)) readCheckedFile(dir, name, entry);
}

function readTensorFile(dir: string, name: string, entry: FileEntry, device?: string) {
  const path = join(dir, name);
  const decoded = decodeSafetensors(readCheckedFile(dir, name, entry), path);
  const tensors: Record<string, Tensor> = {};
  for (const [key, t] of Object.entries(decoded.tensors)) {
    tensors[key] = toTensor(t.data, t.shape, t.dtype, device);
  }
  return tensors;
}

function toTensor(data: TypedArray, shape: readonly number[], dtype: DType, device?: string) {
  return fromTypedArray(data, shape, device === undefined ? { dtype } : { dtype, device });
}

/** Reads and checks a checkpoint folder: every listed file present, whole and unchanged. */
export function loadCheckpoint(dir: string, device?: string): CheckpointData {
  const { files, format: _f, version: _v, ...state } = readState(dir);
  const tensors: Record<string, Record<string, Tensor>> = {};
  try {
    for (const [name, entry] of Object.entries(files)) {
      tensors[name] = readTensorFile(dir, name, entry, device);
    }
  } catch (error) {
    for (const group of Object.values(tensors)) for (const t of Object.values(group)) t.dispose();
    throw error;
  }
  return { tensors, state };
}

/** Disposes every tensor of a loaded checkpoint. */
export function disposeCheckpoint(data: CheckpointData): void {
  for (const group of Object.values(data.tensors)) {
    for (const t of Object.values(group)) if (t instanceof Tensor) t.dispose();
  }
}
