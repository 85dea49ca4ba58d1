// Tensor lifetimes: the live-tensor counter, dispose, `using` declarations, scope() with
// its keep rules, a training step that does not leak, and errors on disposed tensors.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

import { describe, expect, it } from "vitest";

import {
  StateError,
  Tensor,
  ValueError,
  keep,
  liveTensors,
  manualSeed,
  memoryInfo,
  nn,
  optim,
  F,
  scope,
  tensor,
  zeros,
  ones,
} from "../lib/index.js";
import { expectThrows } from "./helpers.js";

describe("the live-tensor counter and dispose", () => {
  it("counts creations and disposals", () => {
    const before = liveTensors();
    const info = memoryInfo();
    const a = zeros([2]);
    const b = ones([3]);
    const c = a.add(a);
    expect(liveTensors()).toBe(before + 3);
    b.dispose();
    expect(liveTensors()).toBe(before + 2);
    a.dispose();
    c.dispose();
    expect(liveTensors()).toBe(before);
    const after = memoryInfo();
    expect(after.created - info.created).toBe(3);
    expect(after.disposed - info.disposed).toBe(3);
    expect(after.liveTensors).toBe(after.created - after.disposed - after.collected);
  });

  it("makes dispose idempotent", () => {
    const before = memoryInfo();
    const t = zeros([4]);
    t.dispose();
    t.dispose();
    t[Symbol.dispose]();
    expect(t.isDisposed).toBe(true);
    expect(memoryInfo().disposed - before.disposed).toBe(1);
    expect(liveTensors()).toBe(before.liveTensors);
  });

  it("keeps a view readable after its base is disposed", () => {
    const base = tensor([1, 2, 3, 4]);
    const view = base.reshape(2, 2);
    base.dispose();
    expect(view.toArray()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    view.dispose();
  });

  it("refuses to read or compute with a disposed tensor", () => {
    const t = tensor([1, 2]);
    t.dispose();
    expectThrows(() => t.dataSync(), StateError, "tensor: this tensor of shape [2] was disposed");
    expectThrows(() => t.add(1), StateError, "tensor: this tensor of shape [2] was disposed");
    const one = tensor([5]);
    one.dispose();
    const error = expectThrows(() => one.item(), StateError, /was disposed$/);
    expect(error.code).toBe("ERR_STATE");
    expect(error.op).toBe("tensor");
  });
});

describe("using declarations", () => {
  it("dispose the tensor at the end of the block", () => {
    const before = liveTensors();
    let seen: Tensor | undefined;
    {
      using t = zeros([2, 2]);
      seen = t;
      expect(liveTensors()).toBe(before + 1);
      expect(t.isDisposed).toBe(false);
    }
    expect(seen.isDisposed).toBe(true);
    expect(liveTensors()).toBe(before);
  });

  it("dispose even when the block throws", () => {
    const before = liveTensors();
    let seen: Tensor | undefined;
    expect(() => {
      using t = ones([3]);
      seen = t;
      throw new Error("boom");
    }).toThrow("boom");
    expect(seen!.isDisposed).toBe(true);
    expect(liveTensors()).toBe(before);
  });
});

describe("scope", () => {
  it("disposes intermediates and keeps the returned tensor", () => {
    const x = tensor([1, 2, 3]);
    const before = liveTensors();
    let intermediate: Tensor | undefined;
    const y = scope(() => {
      intermediate = x.mul(2);
      return intermediate.add(1).exp().log();
    });
    expect(intermediate!.isDisposed).toBe(true);
    expect(x.isDisposed).toBe(false); // created outside the scope
    expect(y.isDisposed).toBe(false);
    expect(liveTensors()).toBe(before + 1);
    expect(Array.from(y.dataSync()).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([3, 5, 7]);
    y.dispose();
    x.dispose();
  });

  it("keeps tensors reachable from returned arrays, objects and maps", () => {
    const before = liveTensors();
    const result = scope(() => {
      const a = zeros([1]);
      const b = ones([1]);
      const c = b.add(1);
      zeros([5]); // dropped
      return { list: [a, { nested: b }], map: new Map([["c", c]]), label: "x" };
    });
    expect(liveTensors()).toBe(before + 3);
    expect(result.map.get("c")!.item()).toBe(2);
    result.list[0] instanceof Tensor && result.list[0].dispose();
    (result.list[1] as { nested: Tensor }).nested.dispose();
    result.map.get("c")!.dispose();
    expect(liveTensors()).toBe(before);
  });

  it("nests: the inner result belongs to the outer scope", () => {
    const before = liveTensors();
    let inner: Tensor | undefined;
    let innerTemp: Tensor | undefined;
    const outer = scope(() => {
      inner = scope(() => {
        innerTemp = zeros([2]);
        return innerTemp.add(3);
      });
      expect(innerTemp!.isDisposed).toBe(true);
      expect(inner.isDisposed).toBe(false);
      return inner.mul(2);
    });
    expect(inner!.isDisposed).toBe(true);
    expect(outer.toArray()).toEqual([6, 6]);
    expect(liveTensors()).toBe(before + 1);
    outer.dispose();
  });

  it("lets keep() save a tensor that is not returned", () => {
    const before = liveTensors();
    let saved: Tensor | undefined;
    const count = scope(() => {
      saved = keep(tensor([4, 5]));
      zeros([3]);
      return 7;
    });
    expect(count).toBe(7);
    expect(saved!.isDisposed).toBe(false);
    expect(liveTensors()).toBe(before + 1);
    saved!.dispose();
  });

  it("disposes everything when fn throws", () => {
    const before = liveTensors();
    expect(() =>
      scope(() => {
        zeros([2]);
        ones([2]);
        throw new Error("inside");
      }),
    ).toThrow("inside");
    expect(liveTensors()).toBe(before);
  });

  it("does not double-count tensors disposed inside it", () => {
    const before = memoryInfo();
    scope(() => {
      const t = zeros([2]);
      t.dispose();
      return null;
    });
    const after = memoryInfo();
    expect(after.disposed - before.disposed).toBe(1);
    expect(after.liveTensors).toBe(before.liveTensors);
  });

  it("rejects an async fn", () => {
    expectThrows(
      () => scope(async () => 1),
      ValueError,
      "scope: fn must be synchronous; it returned a promise",
    );
  });

  it("keeps gradients of leaves created by backward inside it", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const before = liveTensors();
    scope(() => {
      x.mul(x).sum().backward();
    });
    expect(x.grad!.toArray()).toEqual([2, 4]);
    expect(liveTensors()).toBe(before + 1); // only the gradient
  });

  it("leaves the live-tensor count flat over 20 training steps of a small model", () => {
    manualSeed(0);
    const model = new nn.Sequential(new nn.Linear(4, 8), new nn.ReLU(), new nn.Linear(8, 3));
    const optimizer = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
    const inputs = tensor([
      [0.1, 0.2, -0.3, 0.4],
      [-0.5, 0.6, 0.7, -0.8],
      [0.9, -1.0, 0.2, 0.1],
    ]);
    const targets = tensor([0, 2, 1], { dtype: "int32" });
    const step = () =>
      scope(() => {
        optimizer.zeroGrad();
        const loss = F.crossEntropy(model.forward(inputs), targets);
        loss.backward();
        optimizer.step();
        return loss.item();
      });
    const first = step(); // creates gradients and momentum buffers
    const counts: number[] = [];
    const losses: number[] = [first];
    for (let i = 0; i < 20; i++) {
      losses.push(step());
      counts.push(liveTensors());
    }
    expect(new Set(counts).size).toBe(1);
    expect(losses[20]!).toBeLessThan(losses[0]!);
  });
});

describe("the GC backstop", () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;

  /** Full collections until the finalizer has reported everything unreachable. */
  async function collectAll(): Promise<void> {
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  it("counts collected tensors that left every scope undisposed, none disposed there", async () => {
    await collectAll();
    const before = memoryInfo();
    (() => {
      scope(() => {
        const t = zeros([2]);
        t.add(t);
        return zeros([3]); // returned from the outermost scope: the GC's from here on
      });
      scope(() => scope(() => keep(ones([2])))); // kept: the GC's too
      scope(() => {
        scope(() => ones([4])); // returned to the outer scope, which disposes it
      });
    })();
    await collectAll();
    const after = memoryInfo();
    expect(after.created - before.created).toBe(5);
    expect(after.disposed - before.disposed).toBe(3);
    expect(after.collected - before.collected).toBe(2);
    expect(after.liveTensors).toBe(before.liveTensors);
  });
});
