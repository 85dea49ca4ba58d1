// Typed errors: each class carries its name, stable code, op and fields, and formats its
// message as "op: message". Then the messages users meet: matmul and broadcasting shape
// errors, device and dtype mix-ups, and native (cpu kernel) failures, which must arrive as
// typed errors and never bring the process down.

import { describe, expect, it } from "vitest";

import type { RawTensor } from "../lib/backend/backend.js";
import { cpuBackend } from "../lib/backend/cpu/index.js";
import { native } from "../lib/backend/native.js";
import { GradcheckError } from "../lib/autograd/gradcheck.js";
import {
  DTypeError,
  DeepnodeError,
  DeviceError,
  F,
  FormatError,
  IndexError,
  NativeError,
  NotSupportedError,
  ShapeError,
  StateDictError,
  StateError,
  ValueError,
  cuda,
  formatShape,
  formatValue,
  manualSeed,
  matmul,
  nn,
  setNumThreads,
  setRngState,
  tensor,
  zeros,
} from "../lib/index.js";
import { expectThrows } from "./helpers.js";

describe("error classes", () => {
  const cases: [DeepnodeError, string, string][] = [
    [new ShapeError("matmul", "bad", [[1, 2]], 1), "ShapeError", "ERR_SHAPE"],
    [new DTypeError("add", "bad", ["int8"]), "DTypeError", "ERR_DTYPE"],
    [new DeviceError("add", "bad", ["cpu", "reference"]), "DeviceError", "ERR_DEVICE"],
    [new NotSupportedError("conv3d", "bad"), "NotSupportedError", "ERR_NOT_SUPPORTED"],
    [new ValueError("dropout", "bad", "p"), "ValueError", "ERR_VALUE"],
    [new IndexError("gather", "bad"), "IndexError", "ERR_INDEX"],
    [new StateError("backward", "bad"), "StateError", "ERR_STATE"],
    [new NativeError("run", "bad", "ERR_ARGUMENT"), "NativeError", "ERR_NATIVE"],
    [new FormatError("loadSafetensors", "bad", "/tmp/x"), "FormatError", "ERR_FORMAT"],
    [new GradcheckError("bad"), "GradcheckError", "ERR_GRADCHECK"],
  ];

  it.each(cases.map(([e, name, code]) => [name, e, code] as const))(
    "%s has its name, code, op and an 'op: message' message",
    (name, error, code) => {
      expect(error).toBeInstanceOf(Error);
      expect(error).toBeInstanceOf(DeepnodeError);
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect(error.message).toBe(`${error.op}: bad`);
      expect(String(error)).toBe(`${name}: ${error.op}: bad`);
      expect(error.stack).toContain(name);
    },
  );

  it("carries fields beside the prose", () => {
    const shape = new ShapeError("matmul", "bad", [[1, 2], [3]], 1);
    expect(shape.shapes).toEqual([[1, 2], [3]]);
    expect(shape.dim).toBe(1);
    expect(new DTypeError("add", "bad", ["int8"]).dtypes).toEqual(["int8"]);
    expect(new DeviceError("add", "bad", ["cpu"]).devices).toEqual(["cpu"]);
    expect(new ValueError("dropout", "bad", "p").param).toBe("p");
    expect(new NativeError("run", "bad", "ERR_ARGUMENT").nativeCode).toBe("ERR_ARGUMENT");
    expect(new FormatError("load", "bad", "/tmp/x").path).toBe("/tmp/x");
  });

  it("omits the prefix when there is no op", () => {
    const error = new DeepnodeError("ERR_X", "plain");
    expect(error.op).toBeUndefined();
    expect(error.message).toBe("plain");
    expect(error.name).toBe("DeepnodeError");
  });

  it("StateDictError lists every problem at once", () => {
    const error = new StateDictError(
      ["bias"],
      ["extra"],
      [{ key: "weight", expected: [3, 2], got: [3, 3] }],
    );
    expect(error.name).toBe("StateDictError");
    expect(error.code).toBe("ERR_STATE_DICT");
    expect(error.op).toBe("loadStateDict");
    expect(error.message).toBe(
      "loadStateDict: missing keys: bias; unexpected keys: extra; " +
        "size mismatch for weight: expected [3, 2], got [3, 3]",
    );
    expect(error.missing).toEqual(["bias"]);
    expect(error.unexpected).toEqual(["extra"]);
  });

  it("StateDictError names the first few of a long list and keeps all of them", () => {
    const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => prefix + i);
    const mismatched = names("w", 6).map((key) => ({ key, expected: [2], got: [3] }));
    const error = new StateDictError(names("a", 8), names("b", 20), mismatched);
    expect(error.message).toBe(
      "loadStateDict: missing keys: a0, a1, a2, a3, a4, a5, a6, a7; " +
        "unexpected keys: b0, b1, b2, b3, b4, b5, b6, b7, and 12 more keys; " +
        "size mismatch for w0: expected [2], got [3]; size mismatch for w1: expected [2], " +
        "got [3]; size mismatch for w2: expected [2], got [3]; size mismatch for w3: " +
        "expected [2], got [3]; and 2 more size mismatches",
    );
    expect(error.missing).toEqual(names("a", 8));
    expect(error.unexpected).toEqual(names("b", 20));
    expect(error.mismatched.map((m) => m.key)).toEqual(names("w", 6));
  });

  it("formats shapes as PyTorch prints them", () => {
    expect(formatShape([64, 9216])).toBe("[64, 9216]");
    expect(formatShape([])).toBe("[]");
  });

  it("shows a bad value as it was given, whatever its type", () => {
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    const bare = Object.create(null) as { self?: unknown };
    bare.self = bare;
    const shown: unknown[] = [NaN, -Infinity, -0, 1e-7, "5", 2n, null, undefined, [1, "a"], [1n]];
    shown.push(cyclic, bare, () => 1);
    expect(shown.map(formatValue)).toEqual([
      "NaN",
      "-Infinity",
      "-0",
      "1e-7",
      '"5"',
      "2n",
      "null",
      "undefined",
      '[1,"a"]',
      '["1n"]',
      "[object Object]",
      "[object Object]",
      "a function",
    ]);
    // A bigint where a number belongs is a ValueError naming it, not JSON's TypeError.
    expectThrows(
      () => tensor([1n as unknown as number]),
      ValueError,
      "tensor: expected numbers or booleans, got 1n (element 0)",
    );
  });
});

describe("shape errors name both shapes and the dimension", () => {
  it("matmul [64, 9216] by [128, 10]", () => {
    const error = expectThrows(
      () => matmul(zeros([64, 9216]), zeros([128, 10])),
      ShapeError,
      "matmul: shapes [64, 9216] and [128, 10] cannot be multiplied " +
        "(inner dimensions 9216 and 128 differ)",
    );
    expect(error.op).toBe("matmul");
    expect(error.shapes).toEqual([
      [64, 9216],
      [128, 10],
    ]);
  });

  it("matmul with a 1-D operand and with batch dims that do not broadcast", () => {
    expectThrows(
      () => matmul(zeros([3]), zeros([4, 2])),
      ShapeError,
      "matmul: shapes [3] and [4, 2] cannot be multiplied (inner dimensions 3 and 4 differ)",
    );
    const error = expectThrows(
      () => matmul(zeros([7, 2, 3]), zeros([5, 3, 3])),
      ShapeError,
      "matmul: shapes [7] and [5] cannot be broadcast: dimension 0 is 7 and 5",
    );
    expect(error.dim).toBe(0);
  });

  it.each(["cpu", "reference"] as const)("broadcasting on %s", (device) => {
    const error = expectThrows(
      () => zeros([5, 2, 3], { device }).mul(zeros([4, 3], { device })),
      ShapeError,
      "mul: shapes [5, 2, 3] and [4, 3] cannot be broadcast: dimension 1 is 2 and 4",
    );
    expect(error.shapes).toEqual([
      [5, 2, 3],
      [4, 3],
    ]);
    expect(error.dim).toBe(1);
  });

  it("layers name their inputs and weights", () => {
    expectThrows(
      () => F.linear(zeros([2, 3]), zeros([4, 5])),
      ShapeError,
      "linear: input [2, 3] and weight [4, 5] do not fit: " +
        "the input's last dimension must equal the weight's in_features (dimension 1)",
    );
    const conv = expectThrows(
      () => F.conv2d(zeros([1, 3, 5, 5]), zeros([2, 2, 3, 3])),
      ShapeError,
      "conv2d: input [1, 3, 5, 5] has 3 channels but weight [2, 2, 3, 3] expects 2 (groups=1)",
    );
    expect(conv.dim).toBe(1);
  });
});

describe("dtype, device, value and index errors", () => {
  it("mixing devices is a DeviceError naming both", () => {
    const error = expectThrows(
      () => tensor([1]).add(tensor([1], { device: "reference" })),
      DeviceError,
      "add: expected tensors on one device, got cpu and reference",
    );
    expect(error.devices).toEqual(["cpu", "reference"]);
  });

  it("asking for cuda says what is missing", () => {
    const error = expectThrows(
      () => zeros([1], { device: "cuda" }),
      DeviceError,
      `device: cuda:0 is not available: ${cuda.status().reason}; use device "cpu"`,
    );
    expect(error.devices).toEqual(["cuda:0"]);
    expect(cuda.status().reason).toMatch(/CUDA/);
  });

  it("matmul of mixed dtypes is a DTypeError", () => {
    const error = expectThrows(
      () => matmul(zeros([2, 2]), zeros([2, 2], { dtype: "float64" })),
      DTypeError,
      "matmul: expected two float32 or two float64 tensors, got float32 and float64",
    );
    expect(error.dtypes).toEqual(["float32", "float64"]);
  });

  it("float64 arithmetic on cpu is NotSupportedError, naming the backend once", () => {
    const x = tensor([1, 2], { dtype: "float64" });
    expectThrows(
      () => x.add(x),
      NotSupportedError,
      "binary: float64 is not supported by the cpu backend",
    );
  });

  it.each(["cpu", "reference"] as const)(
    "a class index out of range is an IndexError on %s",
    (device) => {
      expectThrows(
        () => F.nllLoss(zeros([2, 3], { device }), tensor([0, 3], { dtype: "int32", device })),
        IndexError,
        "nllLoss: target 3 is out of bounds for 3 classes",
      );
    },
  );

  it("bad settings name the parameter and the value", () => {
    const threads = expectThrows(
      () => setNumThreads(0),
      ValueError,
      "setNumThreads: n must be an integer in [1, 1024], got 0",
    );
    expect(threads.param).toBe("n");
    expectThrows(
      () => manualSeed(-1),
      ValueError,
      "manualSeed: seed must be an integer in [0, 2^53), got -1",
    );
    expectThrows(
      () => setRngState({ seed: 1, offset: 3 }),
      ValueError,
      "setRngState: offset must be a non-negative multiple of 4, got 3",
    );
    expectThrows(
      () => F.dropout(zeros([2]), 1.5),
      ValueError,
      "dropout: p must be in [0, 1], got 1.5",
    );
  });

  it("loadStateDict reports missing, unexpected and mismatched keys together", () => {
    const layer = new nn.Linear(2, 3);
    expectThrows(
      () => layer.loadStateDict({ weight: zeros([3, 3]), extra: zeros([1]) }),
      StateDictError,
      "loadStateDict: missing keys: bias; unexpected keys: extra; " +
        "size mismatch for weight: expected [3, 2], got [3, 3]",
    );
  });

  it("backward misuse is a StateError", () => {
    expectThrows(
      () => zeros([1]).backward(),
      StateError,
      "backward: the tensor does not require grad and has no grad_fn",
    );
  });
});

describe("native errors become typed errors", () => {
  const f32 = (shape: number[], size = shape.reduce((a, b) => a * b, 1)): RawTensor => ({
    storage: new Float32Array(size),
    shape,
    dtype: "float32",
  });
  const plain = { transA: false, transB: false, alpha: 1, beta: 0 };

  it("a cpu matmul with inconsistent sizes is a ShapeError naming the operands and k", () => {
    expectThrows(
      () => cpuBackend.matmul(f32([1, 2, 2]), f32([1, 2, 3]), f32([1, 4, 2]), plain),
      ShapeError,
      "matmul: buffer 'b' holds 8 elements, expected 6 for a [1, 2, 3] by b [1, 3, 2] " +
        "into out [1, 2, 2], inner dimensions k = 3",
    );
    expectThrows(
      () => cpuBackend.matmul(f32([1, 2, 2]), f32([1, 2, 3], 5), f32([1, 3, 2]), plain),
      ShapeError,
      "matmul: buffer 'a' holds 5 elements, expected 6 for a [1, 2, 3] by b [1, 3, 2] " +
        "into out [1, 2, 2], inner dimensions k = 3",
    );
  });

  it("other kernel checks map onto the matching classes", () => {
    expectThrows(
      () => cpuBackend.binary("add", f32([2, 3]), f32([2, 3]), f32([4, 3])),
      ShapeError,
      "binary: cannot broadcast b of shape [4, 3] to [2, 3]",
    );
    expectThrows(
      () =>
        cpuBackend.unary("exp", f32([2]), {
          storage: new Int32Array(2),
          shape: [2],
          dtype: "int32",
        }),
      DTypeError,
      "unary: out and x must have the same dtype, got float32 and int32 (cpu backend)",
    );
    expectThrows(
      () => cpuBackend.reduce("sum", f32([1]), f32([2, 3]), [0, 5]),
      ValueError,
      "reduce: axis 5 is out of range for shape [2, 3]",
    );
    expectThrows(
      () => cpuBackend.permute(f32([2, 3]), f32([3, 2]), [0, 0]),
      ValueError,
      "permute: perm [0, 0] is not a permutation of the 2 dims of shape [3, 2]",
    );
    const params = { stride: [0, 1], padding: [0, 0], dilation: [1, 1], groups: 1 } as const;
    expectThrows(
      () =>
        cpuBackend.conv2d(f32([1, 1, 3, 3]), f32([1, 1, 5, 5]), f32([1, 1, 3, 3]), null, params),
      ValueError,
      /^conv2d: stride and dilation must be >= 1, padding >= 0 and groups >= 1: x \[1, 1, 5, 5\]/,
    );
  });

  it("malformed calls into the addon throw errors with a code instead of crashing", () => {
    const run = native().run as unknown as (op: unknown, buffers: unknown, attrs: unknown) => void;
    const attempts: [() => void, string, string][] = [
      [() => run("nope", [], {}), "ERR_NOT_SUPPORTED", "no native kernel named 'nope'"],
      [() => run("fill", [], {}), "ERR_ARGUMENT", "fill: missing buffer 'out' at position 0"],
      [
        () => run("fill", [new Float32Array(2)], {}),
        "ERR_ARGUMENT",
        "fill: missing attribute 'value'",
      ],
      [
        () => run("fill", [new Float32Array(2)], { value: "x" }),
        "ERR_ARGUMENT",
        "fill: attribute 'value' must be a number",
      ],
      [() => run("fill", [[1, 2]], { value: 1 }), "ERR_ARGUMENT", "buffer 0 must be a typed array"],
      [
        () => run("fill", "x", { value: 1 }),
        "ERR_ARGUMENT",
        "run(op, buffers, attrs): expected a string, an array and an object",
      ],
    ];
    for (const [attempt, code, message] of attempts) {
      const error = expectThrows(attempt, Error, message);
      expect((error as Error & { code?: string }).code).toBe(code);
    }
  });

  it("an unmapped native code arrives as a NativeError with that code", () => {
    const error = expectThrows(
      () =>
        cpuBackend.fill(
          { storage: [] as unknown as Float32Array, shape: [0], dtype: "float32" },
          1,
        ),
      NativeError,
      "fill: buffer 0 must be a typed array",
    );
    expect(error.nativeCode).toBe("ERR_ARGUMENT");
    expect(error.code).toBe("ERR_NATIVE");
  });
});
