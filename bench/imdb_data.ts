// The IMDB LSTM job of bench/cases/imdb.ts, the same on both sides: deepnode encodes the
// reviews once (its vocabulary, its first-256-token cut) and fixes every epoch's batches
// (its length buckets, under the seed); the PyTorch peer reads exactly those ids, labels and
// batches from a binary file written here, so it needs no tokenizer of its own.
//
// The file: a little-endian uint32 byte count, a JSON header of that many bytes (padded
// with spaces to a multiple of 4) naming the int32 sections that follow in order:
// train/test lengths, labels and concatenated ids, then each epoch's batch sizes and its
// review order (the batches one after another, each longest first).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  SentimentLSTM,
  evaluateSentiment,
  prepareImdb,
  reviewBatches,
  sentimentConfig,
  trainStep,
  type EncodedReviews,
} from "../examples/imdb.js";
import type { ImdbData } from "../lib/data/imdb.js";
import { FormatError } from "../lib/errors.js";
import { manualSeed, optim, setDefaultDevice, setFlushDenormal } from "../lib/index.js";

/** The job's settings; the peer gets the same ones with the file. */
export interface ImdbBenchJob {
  /** Training reviews, spread over the split (and at most as many test reviews). */
  limit?: number;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  maxLength: number;
  vocabSize: number;
  minFreq: number;
  embeddingDim: number;
  hiddenSize: number;
  dropout: number;
  clipNorm: number;
}

/** Both splits encoded, and each epoch's batches of training-review indices. */
export interface ImdbBenchData {
  vocabSize: number;
  maxLength: number;
  train: EncodedReviews;
  test: EncodedReviews;
  epochs: number[][][];
}

export const IMDB_BENCH_FORMAT = "deepnode.bench.imdb";

/** Encodes the reviews as `deepnode train imdb` does and draws every epoch's batches. */
export function prepareImdbBench(job: ImdbBenchJob, data?: ImdbData): ImdbBenchData {
  const { vocab, train, test } = prepareImdb({
    ...job,
    ...(data === undefined ? {} : { data }),
  });
  manualSeed(job.seed);
  const epochs = Array.from({ length: job.epochs }, () =>
    reviewBatches(train, job.batchSize, true),
  );
  return { vocabSize: vocab.size, maxLength: job.maxLength, train, test, epochs };
}

function splitSections(name: string, split: EncodedReviews): [string, Int32Array][] {
  const ids = new Int32Array(split.ids.reduce((sum, review) => sum + review.length, 0));
  let offset = 0;
  for (const review of split.ids) {
    ids.set(review, offset);
    offset += review.length;
  }
  return [
    [`${name}.lengths`, Int32Array.from(split.ids, (review) => review.length)],
    [`${name}.labels`, Int32Array.from(split.labels)],
    [`${name}.ids`, ids],
  ];
}

function epochSections(batches: number[][], epoch: number): [string, Int32Array][] {
  return [
    [`epoch${epoch}.batchSizes`, Int32Array.from(batches, (batch) => batch.length)],
    [`epoch${epoch}.order`, Int32Array.from(batches.flat())],
  ];
}

function sections(data: ImdbBenchData): [string, Int32Array][] {
  return [
    ...splitSections("train", data.train),
    ...splitSections("test", data.test),
    ...data.epochs.flatMap((batches, k) => epochSections(batches, k + 1)),
  ];
}

/** Writes `data` in the layout above; torch_peer.py's read_imdb_bench reads it. */
export function writeImdbBenchFile(path: string, data: ImdbBenchData): void {
  const parts = sections(data);
  const header = JSON.stringify({
    format: IMDB_BENCH_FORMAT,
    version: 1,
    vocabSize: data.vocabSize,
    maxLength: data.maxLength,
    epochs: data.epochs.length,
    sections: parts.map(([name, values]) => [name, values.length]),
  });
  const headerBytes = Buffer.from(header.padEnd(Math.ceil(header.length / 4) * 4, " "));
  const size = Buffer.alloc(4);
  size.writeUInt32LE(headerBytes.length);
  const body = parts.map(([, values]) => littleEndian(values));
  writeFileSync(path, Buffer.concat([size, headerBytes, ...body]));
}

function littleEndian(values: Int32Array): Buffer {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((value, k) => bytes.writeInt32LE(value, k * 4));
  return bytes;
}

interface BenchHeader {
  format: string;
  version: number;
  vocabSize: number;
  maxLength: number;
  epochs: number;
  sections: [string, number][];
}

function readSections(path: string): { header: BenchHeader; arrays: Map<string, Int32Array> } {
  const bytes = readFileSync(path);
  const fail = (what: string): never => {
    throw new FormatError("readImdbBenchFile", `${path}: ${what}`, path);
  };
  const headerLength = bytes.length >= 4 ? bytes.readUInt32LE(0) : fail("shorter than 4 bytes");
  let header: BenchHeader;
  try {
    header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString("utf8")) as BenchHeader;
  } catch {
    return fail(`the ${headerLength}-byte header is not JSON`);
  }
  if (header?.format !== IMDB_BENCH_FORMAT || header.version !== 1) {
    fail(
      `expected format ${IMDB_BENCH_FORMAT} version 1, got ${header?.format} ${header?.version}`,
    );
  }
  if (!Array.isArray(header.sections)) fail("the header lists no sections");
  const arrays = new Map<string, Int32Array>();
  let offset = 4 + headerLength;
  for (const [name, count] of header.sections) {
    if (offset + 4 * count > bytes.length) fail(`section ${name} runs past the end of the file`);
    const values = new Int32Array(count);
    for (let k = 0; k < count; k++) values[k] = bytes.readInt32LE(offset + 4 * k);
    arrays.set(name, values);
    offset += 4 * count;
  }
  return { header, arrays };
}

type Sections = (name: string) => Int32Array;

function splitFrom(section: Sections, name: string): EncodedReviews {
  const lengths = section(`${name}.lengths`);
  const ids = section(`${name}.ids`);
  let offset = 0;
  const reviews = Array.from(lengths, (length) => {
    offset += length;
    return ids.slice(offset - length, offset);
  });
  return { ids: reviews, labels: section(`${name}.labels`) };
}

function batchesFrom(section: Sections, epoch: number): number[][] {
  const order = Array.from(section(`epoch${epoch}.order`));
  let offset = 0;
  return Array.from(section(`epoch${epoch}.batchSizes`), (size) => {
    offset += size;
    return order.slice(offset - size, offset);
  });
}

/** The data a file of writeImdbBenchFile holds; a file of another layout is a FormatError. */
export function readImdbBenchFile(path: string): ImdbBenchData {
  const { header, arrays } = readSections(path);
  const section = (name: string): Int32Array => {
    const values = arrays.get(name);
    if (values !== undefined) return values;
    throw new FormatError("readImdbBenchFile", `${path}: no section ${name}`, path);
  };
  return {
    vocabSize: header.vocabSize,
    maxLength: header.maxLength,
    train: splitFrom(section, "train"),
    test: splitFrom(section, "test"),
    epochs: Array.from({ length: header.epochs }, (_, k) => batchesFrom(section, k + 1)),
  };
}

const exported = new Map<string, string>();

/**
 * The job's data file for the peer, written once per process into a temporary folder that
 * is removed when the process exits.
 */
export function imdbBenchFile(job: ImdbBenchJob): string {
  const key = JSON.stringify(job);
  const known = exported.get(key);
  if (known !== undefined) return known;
  const dir = mkdtempSync(join(tmpdir(), "deepnode-bench-imdb-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "reviews.bin");
  writeImdbBenchFile(path, prepareImdbBench(job));
  exported.set(key, path);
  return path;
}

export interface ImdbBenchEpoch {
  seconds: number;
  steps: number;
  trainLoss: number;
  testAccuracy: number;
}

function trainEpoch(
  model: SentimentLSTM,
  optimizer: optim.Adam,
  data: ImdbBenchData,
  batches: number[][],
  job: ImdbBenchJob,
): { seconds: number; trainLoss: number } {
  model.train();
  let lossSum = 0;
  const start = performance.now();
  for (const indices of batches) {
    lossSum += trainStep(model, optimizer, data.train, indices, job.clipNorm) * indices.length;
  }
  const seconds = (performance.now() - start) / 1000;
  return { seconds, trainLoss: lossSum / Math.max(data.train.ids.length, 1) };
}

/**
 * deepnode's side of the job: SentimentLSTM with Adam on the epochs' batches, flush-to-zero
 * on, the test reviews scored after each epoch (not timed).
 */
export function trainImdbBench(data: ImdbBenchData, job: ImdbBenchJob, device: string) {
  setDefaultDevice(device);
  manualSeed(job.seed);
  const model = new SentimentLSTM(sentimentConfig({ ...job, vocabSize: data.vocabSize }));
  const optimizer = new optim.Adam(model.parameters(), { lr: job.lr });
  setFlushDenormal(true);
  try {
    return data.epochs.map((batches): ImdbBenchEpoch => {
      const { seconds, trainLoss } = trainEpoch(model, optimizer, data, batches, job);
      const { accuracy } = evaluateSentiment(model, data.test);
      return { seconds, steps: batches.length, trainLoss, testAccuracy: accuracy };
    });
  } finally {
    setFlushDenormal(false);
  }
}
