// safetensors: exact bytes, round trips of host arrays and Tensors, every kind of
// corrupt file, and atomic writes that leave the target untouched when they fail.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { afterAll, describe, expect, it } from "vitest";

import { FormatError, NotSupportedError, ValueError } from "../lib/errors.js";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  makeFoldersSync,
  loadSafetensorsSync,
  readSafetensorsMetadata,
  saveSafetensors,
  saveSafetensorsSync,
  writeFileAtomic,
  writeFileAtomicSync,
  type HostTensor,
} from "../lib/io/safetensors.js";
import { fromTypedArray } from "../lib/tensor.js";
import { expectThrows } from "./helpers.js";

const scratch = mkdtempSync(join(tmpdir(), "deepnode-io-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A file from a JSON header (padded by the caller if wanted) and data bytes. */
function fileOf(header: string | Uint8Array, data: number[] = []): Uint8Array {
  const json = typeof header === "string" ? Buffer.from(header, "utf8") : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, Buffer.from(data)]);
}

describe("safetensors encoding", () => {
  it("writes the exact bytes of a tiny file", () => {
    const bytes = encodeSafetensors({
      a: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) },
    });
    // The JSON is 54 bytes, padded with two spaces to 56 = 0x38.
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  ';
    const expected = [
      ...[0x38, 0, 0, 0, 0, 0, 0, 0],
      ...Buffer.from(header, "ascii"),
      ...[0x00, 0x00, 0x80, 0x3f], // 1.0f, little-endian
      ...[0x00, 0x00, 0x00, 0x40], // 2.0f
    ];
    expect(Array.from(bytes)).toEqual(expected);
  });

  it("puts metadata first and packs tensors in insertion order", () => {
    const bytes = encodeSafetensors(
      {
        w: { dtype: "int32", shape: [1], data: new Int32Array([-1]) },
        m: { dtype: "uint8", shape: [3], data: new Uint8Array([1, 2, 3]) },
      },
      { format: "pt" },
    );
    const headerLength = Number(Buffer.from(bytes).readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = Buffer.from(bytes.subarray(8, 8 + headerLength)).toString("utf8");
    expect(header.trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},' +
        '"w":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},' +
        '"m":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}',
    );
    expect(Array.from(bytes.subarray(8 + headerLength))).toEqual([255, 255, 255, 255, 1, 2, 3]);
  });

  it("round-trips every dtype, empty and scalar tensors, and metadata", () => {
    const tensors: Record<string, HostTensor> = {
      f32: {
        dtype: "float32",
        shape: [2, 3],
        data: new Float32Array([1.5, -2, 3, 0, 1e-30, 7]),
      },
      f64: {
        dtype: "float64",
        shape: [2],
        data: new Float64Array([Math.PI, -0]),
      },
      i32: {
        dtype: "int32",
        shape: [3],
        data: new Int32Array([-2147483648, 0, 2147483647]),
      },
      u8: { dtype: "uint8", shape: [1, 1], data: new Uint8Array([200]) },
      bool: { dtype: "bool", shape: [2], data: new Uint8Array([1, 0]) },
      i8: { dtype: "int8", shape: [2], data: new Int8Array([-128, 127]) },
      empty: { dtype: "float32", shape: [0, 4], data: new Float32Array(0) },
      scalar: { dtype: "float32", shape: [], data: new Float32Array([42]) },
    };
    const metadata = { format: "pt", "ünïcode ✓": "yes" };
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata));
    expect(decoded.metadata).toEqual(metadata);
    expect(Object.keys(decoded.tensors)).toEqual(Object.keys(tensors));
    for (const [name, tensor] of Object.entries(tensors)) {
      expect(decoded.tensors[name]).toEqual(tensor);
    }
  });

  it("rejects bad names, shapes and metadata by name", () => {
    const one = {
      dtype: "float32",
      shape: [1],
      data: new Float32Array(1),
    } as const;
    expect(() => encodeSafetensors({ __metadata__: one })).toThrow(ValueError);
    expect(() => encodeSafetensors({ __metadata__: one })).toThrow(
      'saveSafetensors: "__metadata__" cannot name a tensor',
    );
    expect(() => encodeSafetensors({ x: { ...one, shape: [2] } })).toThrow(
      "saveSafetensors: tensor x has 1 values for shape [2]",
    );
    const metadata = { epoch: 3 } as unknown as Record<string, string>;
    expect(() => encodeSafetensors({ x: one }, metadata)).toThrow(
      "saveSafetensors: metadata values must be strings, epoch is number",
    );
  });
});

describe("safetensors decoding of other writers' dtypes", () => {
  it("reads F16 and BF16 as float32 and I64 as int32", () => {
    const header =
      '{"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},' +
      '"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},' +
      '"l":{"dtype":"I64","shape":[2],"data_offsets":[12,28]}}';
    const half = [0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c]; // 1, -2, 2^-24, inf
    const bfloat = [0x80, 0x3f, 0x49, 0x40]; // 1, 3.140625
    const int64 = [0xfe, ...new Array(7).fill(0xff), 5, 0, 0, 0, 0, 0, 0, 0]; // -2, 5
    const { tensors } = decodeSafetensors(fileOf(header, [...half, ...bfloat, ...int64]));
    expect(tensors.h).toEqual({
      dtype: "float32",
      shape: [4],
      data: new Float32Array([1, -2, 2 ** -24, Infinity]),
    });
    expect(tensors.b!.data).toEqual(new Float32Array([1, 3.140625]));
    expect(tensors.l).toEqual({
      dtype: "int32",
      shape: [2],
      data: new Int32Array([-2, 5]),
    });
  });

  it("rejects I64 values outside the int32 range", () => {
    const header = '{"l":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}';
    const bytes = fileOf(header, [0, 0, 0, 0, 1, 0, 0, 0]);
    expect(() => decodeSafetensors(bytes, "big.safetensors")).toThrow(
      "loadSafetensors: big.safetensors: " +
        "tensor l (I64) holds 4294967296 at 0, outside the int32 range",
    );
  });

  it("names dtypes it cannot load", () => {
    const bytes = fileOf('{"x":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}}', [0, 0]);
    expect(() => decodeSafetensors(bytes, "f")).toThrow(NotSupportedError);
    expect(() => decodeSafetensors(bytes, "f")).toThrow("f: tensor x has dtype U16, not loaded");
  });
});

describe("safetensors decoding of corrupt files", () => {
  const entry = (extra: string) => `{"x":{"dtype":"F32","shape":[2],${extra}}}`;
  const cases: [string, Uint8Array, string][] = [
    ["a short file", new Uint8Array(5), "not a safetensors file: file is 5 bytes, shorter than 8"],
    [
      "a header longer than the file",
      Buffer.from(fileOf("{}")).fill(0xff, 0, 8),
      "not a safetensors file: header length 18446744073709551615 exceeds the 2 bytes after it",
    ],
    ["invalid JSON", fileOf('{"x": '), "header is not valid UTF-8 JSON"],
    [
      "invalid UTF-8",
      fileOf(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
      "header is not valid UTF-8 JSON",
    ],
    ["a JSON array", fileOf("[1, 2]"), "header is not a JSON object"],
    ["no dtype", fileOf('{"x":{"shape":[],"data_offsets":[0,0]}}'), "tensor x has no dtype string"],
    [
      "an unknown dtype",
      fileOf('{"x":{"dtype":"F33","shape":[],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
      "tensor x has unknown dtype F33",
    ],
    [
      "a bad shape",
      fileOf(entry('"data_offsets":[0,8]').replace("[2]", "[-2]")),
      "tensor x: shape must be a list of non-negative integers",
    ],
    [
      "bad offsets",
      fileOf(entry('"data_offsets":[0]')),
      "tensor x: data_offsets must be two non-negative integers",
    ],
    [
      "reversed offsets",
      fileOf(entry('"data_offsets":[8,0]')),
      "tensor x: data_offsets [8, 0] are reversed",
    ],
    [
      "a size that does not match the shape",
      fileOf(entry('"data_offsets":[0,4]'), [0, 0, 0, 0]),
      "tensor x: data_offsets [0, 4] hold 4 bytes, shape [2] of F32 needs 8",
    ],
    [
      "offsets beyond the data",
      fileOf(entry('"data_offsets":[0,8]'), [0, 0, 0, 0]),
      "tensor x: data_offsets end 8 beyond the 4 data bytes",
    ],
    [
      "overlapping tensors",
      fileOf(
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},' +
          '"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}',
        [1, 2, 3],
      ),
      "tensor b overlaps tensor a",
    ],
    [
      "a gap between tensors",
      fileOf('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', [1, 2]),
      "1 unused bytes before tensor a",
    ],
    [
      "trailing bytes",
      fileOf('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [1, 2]),
      "tensors cover 1 of the 2 data bytes",
    ],
    [
      "a tensor named __proto__",
      fileOf('{"__proto__":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
      "a tensor named __proto__ cannot be loaded",
    ],
    [
      "non-string metadata",
      fileOf('{"__metadata__":{"epoch":3}}'),
      "__metadata__ must map strings to strings",
    ],
  ];
  for (const [what, bytes, message] of cases) {
    it(`rejects ${what}`, () => {
      expect(() => decodeSafetensors(bytes, "bad.safetensors")).toThrow(FormatError);
      expect(() => decodeSafetensors(bytes, "bad.safetensors")).toThrow(
        `loadSafetensors: bad.safetensors: ${message}`,
      );
    });
  }

  it("gives FormatError for every truncation of a valid file", () => {
    const bytes = encodeSafetensors(
      {
        a: { dtype: "float32", shape: [3], data: new Float32Array([1, 2, 3]) },
        b: { dtype: "int8", shape: [2], data: new Int8Array([1, 2]) },
      },
      { note: "x" },
    );
    for (let length = 0; length < bytes.length; length++) {
      expect(() => decodeSafetensors(bytes.subarray(0, length))).toThrow(FormatError);
    }
  });
});

describe("safetensors files of Tensors", () => {
  it("saves and loads float32, int32 and bool tensors (async)", async () => {
    const path = join(scratch, "model.safetensors");
    const weight = fromTypedArray(new Float32Array([0.5, -1, 2, 3.25, 0, 1e-8]), [2, 3]);
    const labels = fromTypedArray(new Int32Array([7, -3, 0]), [3]);
    const mask = fromTypedArray(new Uint8Array([1, 0]), [2], { dtype: "bool" });
    await saveSafetensors(path, { weight, labels, mask }, { framework: "deepnode" });

    const loaded = await loadSafetensors(path);
    expect(Object.keys(loaded)).toEqual(["weight", "labels", "mask"]);
    expect(loaded.weight!.shape).toEqual([2, 3]);
    expect(loaded.weight!.dtype).toBe("float32");
    expect(loaded.weight!.dataSync()).toEqual(weight.dataSync());
    expect(loaded.labels!.dtype).toBe("int32");
    expect(Array.from(loaded.labels!.dataSync())).toEqual([7, -3, 0]);
    expect(loaded.mask!.dtype).toBe("bool");
    expect(readSafetensorsMetadata(path)).toEqual({ framework: "deepnode" });
    expect(readdirSync(scratch).filter((name) => name.includes(".tmp-"))).toEqual([]);
  });

  it("saves and loads synchronously, replacing an existing file", () => {
    const path = join(scratch, "sync.safetensors");
    writeFileSync(path, "old contents");
    saveSafetensorsSync(path, {
      x: fromTypedArray(new Float32Array([1, 2, 3, 4]), [2, 2]),
    });
    const loaded = loadSafetensorsSync(path);
    expect(loaded.x!.shape).toEqual([2, 2]);
    expect(Array.from(loaded.x!.dataSync())).toEqual([1, 2, 3, 4]);
    expect(readSafetensorsMetadata(path)).toEqual({});
    expect(loadSafetensorsSync(path, { device: "reference" }).x!.device).toBe("reference");
  });

  it("names the file in load errors", async () => {
    const path = join(scratch, "broken.safetensors");
    writeFileSync(path, Buffer.from([1, 2, 3]));
    await expect(loadSafetensors(path)).rejects.toThrow(FormatError);
    await expect(loadSafetensors(path)).rejects.toThrow(
      `loadSafetensors: ${path}: not a safetensors file: file is 3 bytes, shorter than 8`,
    );
    expect(() => readSafetensorsMetadata(path)).toThrow(
      `${path}: not a safetensors file: file is 3 bytes, shorter than 8`,
    );
  });
});

describe("safetensors files that cannot be read", () => {
  it("names a missing file or a folder in a FormatError, sync and async", async () => {
    const missing = join(scratch, "absent.safetensors");
    const rejected = await loadSafetensors(missing).then(
      () => null,
      (error: unknown) => error,
    );
    expect(rejected).toBeInstanceOf(FormatError);
    expect((rejected as Error).message).toBe(
      `loadSafetensors: ${missing}: cannot be read: no such file`,
    );
    expectThrows(
      () => loadSafetensorsSync(scratch),
      FormatError,
      `loadSafetensorsSync: ${scratch}: cannot be read: is a folder, not a file`,
    );
  });
});

describe("safetensors files that cannot be written", () => {
  it("names the path asked for, not the temporary one, and a value that is no tensor", async () => {
    const file = join(scratch, "a-plain-file");
    writeFileSync(file, "x");
    const t = { a: fromTypedArray(Float32Array.from([1, 2]), [2]) };
    const cases: [string, string][] = [
      [join(file, "w.safetensors"), "a part of the path is a file, not a folder"],
      [join(scratch, "absent", "w.safetensors"), "its folder does not exist"],
      [scratch, "is a folder"],
    ];
    for (const [path, why] of cases) {
      const rejected = await saveSafetensors(path, t).then(
        () => null,
        (error: unknown) => error,
      );
      expect(rejected).toBeInstanceOf(ValueError);
      expect((rejected as Error).message).toBe(`saveSafetensors: cannot write ${path}: ${why}`);
      expectThrows(
        () => saveSafetensorsSync(path, t),
        ValueError,
        `saveSafetensorsSync: cannot write ${path}: ${why}`,
      );
    }
    expectThrows(
      () => saveSafetensorsSync(join(scratch, "n.safetensors"), { a: 3 as never }),
      ValueError,
      'saveSafetensors: tensors["a"] is not a Tensor (got number)',
    );
    expect(readdirSync(scratch).filter((name) => name.includes(".tmp-"))).toEqual([]);
  });
});

describe("atomic writes", () => {
  function* failingChunks(): Generator<Uint8Array> {
    yield new Uint8Array(1000).fill(1);
    throw new Error("disk on fire");
  }

  function tempFiles(dir: string): string[] {
    return readdirSync(dir).filter((name) => name.includes(".tmp-"));
  }

  it("leaves the target untouched and no temp file when writing fails", async () => {
    const dir = mkdtempSync(join(scratch, "atomic-"));
    const path = join(dir, "weights.safetensors");
    writeFileSync(path, "previous");
    expect(() => writeFileAtomicSync(path, failingChunks())).toThrow("disk on fire");
    await expect(writeFileAtomic(path, failingChunks())).rejects.toThrow("disk on fire");
    expect(readFileSync(path, "utf8")).toBe("previous");
    expect(tempFiles(dir)).toEqual([]);
  });

  it("removes the temp file when the rename fails", async () => {
    const dir = mkdtempSync(join(scratch, "rename-"));
    const path = join(dir, "occupied");
    mkdirSync(join(path, "child"), { recursive: true });
    const tensors = { x: fromTypedArray(new Float32Array([1]), [1]) };
    await expect(saveSafetensors(path, tensors)).rejects.toThrow();
    expect(() => saveSafetensorsSync(path, tensors)).toThrow();
    expect(existsSync(join(path, "child"))).toBe(true);
    expect(tempFiles(dir)).toEqual([]);
  });

  it("leaves the target untouched when the arguments are bad", async () => {
    const dir = mkdtempSync(join(scratch, "args-"));
    const path = join(dir, "weights.safetensors");
    writeFileSync(path, "previous");
    const bad = { __metadata__: fromTypedArray(new Float32Array([1]), [1]) };
    await expect(saveSafetensors(path, bad)).rejects.toThrow(ValueError);
    expect(readFileSync(path, "utf8")).toBe("previous");
    expect(tempFiles(dir)).toEqual([]);
  });
});

describe("makeFoldersSync", () => {
  it("makes the missing folders on the way, and leaves existing ones", () => {
    const deep = join(scratch, "made", "a", "b");
    makeFoldersSync(deep);
    expect(existsSync(deep)).toBe(true);
    writeFileSync(join(deep, "kept"), "x");
    makeFoldersSync(join(scratch, "made"));
    expect(readFileSync(join(deep, "kept"), "utf8")).toBe("x");
  });

  it("fails with the folder's own error where Node's recursive mkdir never returns", () => {
    // mkdirSync("/proc/x", { recursive: true }) loops for ever on Linux.
    const under = existsSync("/proc/self") ? "/proc" : join(scratch, "a-file");
    if (under !== "/proc") writeFileSync(under, "x");
    let caught: unknown;
    try {
      makeFoldersSync(join(under, "deepnode-no-such", "sub"));
    } catch (error) {
      caught = error;
    }
    expect((caught as NodeJS.ErrnoException).code).toMatch(/^(ENOENT|ENOTDIR|EACCES|EPERM)$/);
  });
});
