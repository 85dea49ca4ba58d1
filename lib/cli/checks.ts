// What `deepnode train` checks before it prints anything: the device, the file and folder
// flags, the checkpoint --resume names and whether its run has anything left to train.
// What only loading finds (a corrupt file, a checkpoint of another model) comes later.

import { closeSync, existsSync, openSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

import { backendFor, parseDevice } from "../backend/registry.js";
import { missingMnistIdxFile } from "../data/mnist.js";
import { ValueError } from "../errors.js";
import { isFinished, readCheckpointProgress, type CheckpointProgress } from "../train/resume.js";

/** The flags both train tasks share that name a device, files or folders. */
export interface TrainPathFlags {
  epochs: number;
  device: string;
  out: string;
  checkpointDir?: string;
  resume?: string;
  metrics?: string;
  plot?: string;
}

/** The option's name as commander has it: --checkpoint-dir -> checkpointDir. */
function paramOf(flag: string): string {
  return flag.slice(2).replace(/-(\w)/g, (_, letter: string) => letter.toUpperCase());
}

function isFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/** A folder of the four MNIST IDX files, as loadMnist reads them. */
export function checkMnistData(dir: string): void {
  const fail = (problem: string): never => {
    throw new ValueError("train mnist", `--data ${problem}`, "data");
  };
  if (!existsSync(dir)) fail(`folder '${dir}' does not exist`);
  if (!isFolder(dir)) fail(`'${dir}' is a file, not a folder of MNIST IDX files`);
  const missing = missingMnistIdxFile(dir);
  if (missing !== null) fail(`folder '${dir}' holds neither ${missing} nor ${missing}.gz`);
}

/**
 * The run creates missing folders on the way to `path`, but none can be made inside a file,
 * and nothing in a folder this user may not write to (found now, not after training).
 */
function checkAncestors(op: string, flag: string, path: string): void {
  let ancestor = dirname(resolve(path));
  while (!existsSync(ancestor)) ancestor = dirname(ancestor);
  if (!isFolder(ancestor)) {
    throw new ValueError(op, `${flag} '${path}': '${ancestor}' is a file`, paramOf(flag));
  }
  checkWritable(op, flag, path, ancestor);
}

/** The run writes into `folder` (for `path`): this user must be allowed to. */
// A file is made there and removed: root passes every permission check, but not a read-only
// mount or a folder such as /proc.
function checkWritable(op: string, flag: string, path: string, folder: string): void {
  const probe = join(folder, `.deepnode-write-check-${process.pid}`);
  try {
    closeSync(openSync(probe, "wx"));
    rmSync(probe);
  } catch {
    const message = `${flag} '${path}': the folder '${folder}' is not writable`;
    throw new ValueError(op, message, paramOf(flag));
  }
}

/** A file the run writes: not a folder, and not inside a file (bench's --json too). */
export function checkFileFlag(op: string, flag: string, path: string): void {
  if (isFolder(path)) {
    throw new ValueError(op, `${flag} '${path}' is a folder, not a file`, paramOf(flag));
  }
  checkAncestors(op, flag, path);
}

/** A folder the run writes into: not a file, and not inside a file. */
function checkFolderFlag(op: string, flag: string, path: string): void {
  if (existsSync(path) && !isFolder(path)) {
    throw new ValueError(op, `${flag} '${path}' is a file, not a folder`, paramOf(flag));
  }
  if (isFolder(path)) checkWritable(op, flag, path, path);
  else checkAncestors(op, flag, path);
}

/**
 * Checks the device and the file and folder flags (`op` is "train mnist" or "train imdb",
 * whose --out is a file and a folder) and returns the progress of the checkpoint --resume
 * names, or null without --resume.
 */
export function checkTrainPaths(
  op: string,
  flags: TrainPathFlags,
  out: "file" | "folder",
): CheckpointProgress | null {
  backendFor(parseDevice(flags.device));
  if (out === "file") checkFileFlag(op, "--out", flags.out);
  else checkFolderFlag(op, "--out", flags.out);
  if (flags.checkpointDir !== undefined) {
    checkFolderFlag(op, "--checkpoint-dir", flags.checkpointDir);
  }
  if (flags.metrics !== undefined) checkFileFlag(op, "--metrics", flags.metrics);
  if (flags.plot !== undefined) checkFileFlag(op, "--plot", flags.plot);
  return flags.resume === undefined ? null : readCheckpointProgress(flags.resume);
}

/** The line for a resumed run with nothing left to train: where it ended and what to do. */
export function finishedRunMessage(progress: CheckpointProgress, epochs: number): string {
  const { path, epoch } = progress;
  if (progress.stoppedEarly) {
    return (
      `nothing to train: the checkpoint ${path} stopped early at epoch ${epoch} (early ` +
      "stopping or a callback ended its run), and a stopped run stays stopped even with a " +
      "larger --epochs; to train further, start a new run without --resume"
    );
  }
  const bound = epoch === epochs ? `the last of --epochs ${epochs}` : `past --epochs ${epochs}`;
  return (
    `nothing to train: the checkpoint ${path} is at epoch ${epoch}, ${bound}; ` +
    `to train further, pass a larger --epochs (e.g. --epochs ${epoch + 1})`
  );
}

/** Prints finishedRunMessage and returns true when the resumed run has nothing to train. */
export function reportFinished(progress: CheckpointProgress | null, epochs: number): boolean {
  if (progress === null || !isFinished(progress, epochs)) return false;
  console.log(finishedRunMessage(progress, epochs));
  return true;
}

/** The line a resumed run starts with: the checkpoint it picked and where that run was. */
export function resumeLine(progress: CheckpointProgress): string {
  return `resuming from ${progress.path} (epoch ${progress.epoch}, step ${progress.globalStep})`;
}
