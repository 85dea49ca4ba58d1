// Batched matrix multiplication: out = alpha * op(a) @ op(b) + beta * out, each dot
// product summed in double and rounded once.

import type { MatmulOptions, RawTensor } from "../backend.js";
import { ShapeError, formatShape } from "../../errors.js";
import { FLOAT_DTYPES, elements, requireDType, requireSameDType } from "./storage.js";

/** A matrix operand seen as [batch, rows, cols], read through an optional transpose. */
interface MatrixView {
  values: ArrayLike<number>;
  batch: number;
  rows: number; // rows of op(x)
  cols: number; // columns of op(x)
  transposed: boolean;
}

function matrixView(x: RawTensor, transposed: boolean): MatrixView {
  const shape = x.shape.length === 2 ? [1, ...x.shape] : x.shape;
  if (shape.length !== 3) {
    const message = `operands must have rank 2 or 3, got ${formatShape(x.shape)}`;
    throw new ShapeError("matmul", message, [x.shape]);
  }
  const [batch, stored0, stored1] = shape as [number, number, number];
  const [rows, cols] = transposed ? [stored1, stored0] : [stored0, stored1];
  return { values: elements("matmul", x), batch, rows, cols, transposed };
}

/** Element (row, col) of op(x) in batch `batchIndex` (broadcast when x has batch 1). */
function at(view: MatrixView, batchIndex: number, row: number, col: number): number {
  const base = (view.batch === 1 ? 0 : batchIndex) * view.rows * view.cols;
  const offset = view.transposed ? col * view.rows + row : row * view.cols + col;
  return view.values[base + offset]!;
}

function checkShapes(out: RawTensor, a: RawTensor, b: RawTensor, lhs: MatrixView, rhs: MatrixView) {
  const shapes = [a.shape, b.shape, out.shape];
  if (lhs.cols !== rhs.rows) {
    const message =
      `inner dimensions differ: ${formatShape(a.shape)} gives k = ${lhs.cols}, ` +
      `${formatShape(b.shape)} gives k = ${rhs.rows}`;
    throw new ShapeError("matmul", message, shapes);
  }
  const batch = out.shape.length === 3 ? out.shape[0]! : 1;
  const expected = [batch, lhs.rows, rhs.cols];
  const actual = out.shape.length === 2 ? [1, ...out.shape] : out.shape;
  const batchesFit = [lhs.batch, rhs.batch].every((n) => n === 1 || n === batch);
  if (!batchesFit || actual.some((extent, axis) => extent !== expected[axis])) {
    const message =
      `out ${formatShape(out.shape)} does not fit ${formatShape(a.shape)} @ ` +
      `${formatShape(b.shape)} (batch ${batch}, m ${lhs.rows}, n ${rhs.cols})`;
    throw new ShapeError("matmul", message, shapes);
  }
}

export function matmul(out: RawTensor, a: RawTensor, b: RawTensor, options: MatmulOptions): void {
  requireDType("matmul", a.dtype, FLOAT_DTYPES);
  requireSameDType("matmul", [out, a, b]);
  const lhs = matrixView(a, options.transA);
  const rhs = matrixView(b, options.transB);
  checkShapes(out, a, b, lhs, rhs);

  const outValues = elements("matmul", out);
  const [m, n, k] = [lhs.rows, rhs.cols, lhs.cols];
  const batch = m * n === 0 ? 0 : outValues.length / (m * n);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let p = 0; p < k; p++) dot += at(lhs, bi, i, p) * at(rhs, bi, p, j);
        const o = (bi * m + i) * n + j;
        // beta = 0 ignores out's old contents, NaN included, as BLAS does.
        const previous = options.beta === 0 ? 0 : options.beta * outValues[o]!;
        outValues[o] = options.alpha * dot + previous;
      }
    }
  }
}
