// Cases for the cuda backend's element-wise kernel family (native/cuda/kernels/) beyond the
// conformance suite: broadcasts and permutes over many dims that do not merge, the data
// checks that run on the device (integer divisors, pooling indices) and Philox draws whose
// offset starts inside a block of four. Run on the host emulation
// (backend-cuda-emulated.test.ts) and, where there is one, on a GPU (backend-cuda.test.ts).

import { describe, expect, it } from "vitest";

import type { Backend } from "../lib/backend/backend.js";
import type { DType } from "../lib/dtype.js";
import { backendFor } from "../lib/backend/registry.js";
import * as lib from "../lib/index.js";
import { expectClose, expectThrows, raw, readRaw, toFloat32 } from "./helpers.js";

export function cudaElementwiseSuite(title: string, available: boolean): void {
  describe.skipIf(!available)(title, () => {
    const cudaBackend = () => backendFor("cuda:0");
    const reference = () => backendFor("reference");
    const cpu = () => backendFor("cpu");
    const counting = (count: number, start = 0) =>
      Array.from({ length: count }, (_, i) => start + i);

    it("broadcasts binary, where and expand over seven dims that do not merge", () => {
      const aShape = [2, 1, 3, 1, 2, 1, 2];
      const bShape = [1, 2, 1, 3, 1, 2, 1];
      const outShape = [2, 2, 3, 3, 2, 2, 2];
      const run = (b: Backend) => {
        const out = raw(b, "float32", outShape);
        b.binary(
          "sub",
          out,
          raw(b, "float32", aShape, counting(24)),
          raw(b, "float32", bShape, counting(12, 7)),
        );
        const picked = raw(b, "int32", outShape);
        const cond = raw(b, "bool", [2, 1, 1, 3, 1, 1, 2], [1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 0]);
        b.where(
          picked,
          cond,
          raw(b, "int32", aShape, counting(24)),
          raw(b, "int32", bShape, counting(12, 50)),
        );
        const expanded = raw(b, "int8", outShape);
        b.expand(expanded, raw(b, "int8", bShape, counting(12, -6)));
        return [readRaw(b, out), readRaw(b, picked), readRaw(b, expanded)];
      };
      expect(run(cudaBackend())).toEqual(run(reference()));
    });

    it("permutes eight dims in a scrambled order, for 1-, 4- and 8-byte dtypes", () => {
      const shape = [2, 3, 1, 2, 2, 1, 3, 2];
      const perm = [7, 0, 6, 1, 5, 2, 4, 3];
      for (const dtype of ["uint8", "float32", "float64"] as const) {
        const run = (b: Backend) => {
          const out = raw(
            b,
            dtype,
            perm.map((p) => shape[p]!),
          );
          b.permute(out, raw(b, dtype, shape, counting(144)), perm);
          return readRaw(b, out);
        };
        expect(run(cudaBackend()), dtype).toEqual(run(reference()));
      }
    });

    it("casts into a true uint8 as a Uint8Array stores, and uint8 to bool, on the device", () => {
      const sources: [DType, number[]][] = [
        [
          "float32",
          toFloat32([0, -1.75, 2.5, 300.7, -300.2, NaN, Infinity, -Infinity, 255.5, -0.5]),
        ],
        [
          "float64",
          [1e10 + 3.5, -(2 ** 40) - 1, 65535.9, -1, NaN, 0.25, 511, -256.5, 1e300, -1e-300],
        ],
        ["int32", [-1, 256, 257, -129, 2147483647, -2147483648, 0, 128, 255, -255]],
        ["int8", [-1, -128, 127, 0, 1, -2, 64, -64, 100, -100]],
      ];
      const b = cudaBackend();
      for (const [from, values] of sources) {
        const out = raw(b, "uint8", [values.length]);
        b.cast(out, raw(b, from, [values.length], values));
        expect(readRaw(b, out), from).toEqual(Array.from(Uint8Array.from(values)));
      }
      const bools = raw(b, "bool", [5]);
      b.cast(bools, raw(b, "uint8", [5], [0, 1, 2, 128, 255]));
      expect(readRaw(b, bools)).toEqual([0, 1, 1, 1, 1]);
    });

    it("finds an int32 zero divisor in a broadcast operand before writing anything", () => {
      for (const op of ["floordiv", "remainder"] as const) {
        const b = cudaBackend();
        const out = raw(b, "int32", [3, 4]);
        b.fill(out, 7);
        const divide = () =>
          b.binary(
            op,
            out,
            raw(b, "int32", [3, 4], counting(12)),
            raw(b, "int32", [4], [1, 2, 0, 3]),
          );
        expectThrows(divide, lib.ValueError, `binary: ${op}: integer division by zero`);
        expect(readRaw(b, out)).toEqual(new Array(12).fill(7));
      }
    });

    it("reports a max-pool index outside its plane as the cpu does, an IndexError", () => {
      const messages = [cudaBackend(), cpu()].map((b) => {
        const gradX = raw(b, "float32", [1, 2, 2, 2]);
        const gradOut = raw(b, "float32", [1, 2, 1, 1], [1, 2]);
        const indices = raw(b, "int32", [1, 2, 1, 1], [3, 4]);
        const caught = (() => {
          try {
            b.maxPool2dBackward(gradX, gradOut, indices);
          } catch (error) {
            return error;
          }
          return null;
        })();
        expect(caught, b.name).toBeInstanceOf(lib.IndexError);
        return (caught as Error).message;
      });
      expect(messages[0]).toBe(messages[1]);
      expect(messages[0]).toMatch(/an index lies outside its h \* w plane of 4/);
    });

    it("draws uniforms, normals and dropout masks whose offset is inside a block of four", () => {
      for (const offset of [1, 2, 3, 5, 6]) {
        for (const size of [1, 2, 3, 6, 9]) {
          const key = { seed: 11 + offset, offset };
          const run = (b: Backend) => {
            const uniform = raw(b, "float32", [size]);
            b.randUniform(uniform, key, -2, 3);
            const normal = raw(b, "float32", [size]);
            b.randNormal(normal, key, 1, 2);
            const out = raw(b, "float32", [size]);
            const mask = raw(b, "float32", [size]);
            b.dropout(out, mask, raw(b, "float32", [size], counting(size, 1)), 0.4, key);
            return {
              uniform,
              normal,
              out,
              mask,
              values: [uniform, out, mask].map((t) => readRaw(b, t)),
            };
          };
          const actual = run(cudaBackend());
          const expected = run(reference());
          const label = `offset ${offset}, size ${size}`;
          expect(actual.values, label).toEqual(expected.values);
          const normals = { ...actual.normal, storage: cudaBackend().read(actual.normal) };
          expectClose(normals, expected.normal, { atol: 1e-6, rtol: 1e-6 }, label);
        }
      }
    });
  });
}
