// The one door into native code: every entry point of the addon (native/addon.cc keeps
// the same list in its table) and, for the generic `run` entry, every kernel with the
// buffers it takes (outputs first) and its attributes. test/binding.test.ts checks that
// the loaded addon and this file list the same names.

export type NativeBuffer = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;

/** Random key as the kernels take it: the seed split in 32-bit halves, and the offset. */
export interface NativeRandomAttrs {
  seedLo: number;
  seedHi: number;
  offset: number;
}

export interface ConvAttrs {
  n: number;
  cIn: number;
  h: number;
  w: number;
  cOut: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
  groups: number;
}

export interface PoolAttrs {
  n: number;
  c: number;
  h: number;
  w: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
  ceilMode: boolean;
}

/** The attributes of sgd_step (and, with a count, sgd_steps). */
export interface SgdAttrs {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  firstStep: boolean;
}

/** The attributes of adam_step (and, with a count, adam_steps). */
export interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupledWeightDecay: boolean;
  amsgrad: boolean;
  step: number;
}

/** The attributes of rmsprop_step (and, with a count, rmsprop_steps). */
export interface RmspropAttrs {
  lr: number;
  alpha: number;
  eps: number;
  weightDecay: number;
  momentum: number;
  centered: boolean;
}

/** The attributes of adagrad_step (and, with a count, adagrad_steps). */
export interface AdagradAttrs {
  lr: number;
  lrDecay: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** Attributes of the recurrent kernels; see lib/backend/rnn.ts for the shapes. */
export interface RnnAttrs {
  mode: string; // rnn_tanh, rnn_relu, lstm or gru
  reverse: boolean;
  column: number;
  slot: number;
  steps: number;
  batch: number;
  hidden: number;
  outWidth: number;
  slots: number;
  lengthValues?: readonly number[]; // the lengths buffer's values, where the caller has them
}

/** Slices along one axis: the large tensor is [outer, largeDim, inner], the small one
 * [outer, count, inner], and small row i is large row start + i * step. */
export interface SliceAttrs {
  outer: number;
  largeDim: number;
  inner: number;
  count: number;
  start: number;
  step: number;
}

/** Kernel name -> [buffers, attributes]. Optional buffers may be passed as null. */
export interface NativeKernels {
  fill: [[out: NativeBuffer], { value: number }];
  /**
   * uint8 storage is read and written as bool unless `uint8` names one of the two casts
   * where uint8 and bool differ: "wrap" into a true uint8 (as a Uint8Array stores: truncated,
   * modulo 256, NaN and infinities 0), "bool" from a true uint8 (non-zero becomes 1).
   */
  cast: [[out: NativeBuffer, x: NativeBuffer], { uint8?: "wrap" | "bool" }];
  rand_uniform: [[out: Float32Array], NativeRandomAttrs & { low: number; high: number }];
  rand_normal: [[out: Float32Array], NativeRandomAttrs & { mean: number; std: number }];
  dropout: [
    [out: Float32Array, mask: Float32Array, x: Float32Array],
    NativeRandomAttrs & { p: number },
  ];
  unary: [[out: NativeBuffer, x: NativeBuffer], { op: string; alpha: number; beta: number }];
  binary: [
    [out: NativeBuffer, a: NativeBuffer, b: NativeBuffer],
    { op: string; outShape: number[]; aShape: number[]; bShape: number[] },
  ];
  where: [
    [out: NativeBuffer, cond: Uint8Array, a: NativeBuffer, b: NativeBuffer],
    { outShape: number[]; condShape: number[]; aShape: number[]; bShape: number[] },
  ];
  expand: [[out: NativeBuffer, x: NativeBuffer], { outShape: number[]; xShape: number[] }];
  permute: [[out: NativeBuffer, x: NativeBuffer], { shape: number[]; perm: number[] }];
  reduce: [[out: NativeBuffer, x: NativeBuffer], { op: string; shape: number[]; axes: number[] }];
  arg_reduce: [[out: Int32Array, x: NativeBuffer], { op: string; shape: number[]; axis: number }];
  /**
   * [out, x0, ..., x(count-1)], float32 or float64 alike: out[k] = the normType-norm of xk
   * (normType > 0 or Infinity), accumulated in double and rounded once.
   */
  norms: [(Float32Array | Float64Array)[], { normType: number; count: number }];
  /**
   * [x0, ..., x(count-1), factor], float32 or float64 alike: every xk *= factor[0], in place.
   * With maxNorm (finite, >= 0), factor[0] is a total norm and the multiplier its clip factor
   * (args::clipFactor in native/core/args/foreach.h).
   */
  scale_in_place: [(Float32Array | Float64Array)[], { count: number; maxNorm?: number }];
  matmul: [
    [out: Float32Array, a: Float32Array, b: Float32Array],
    {
      m: number;
      n: number;
      k: number;
      // Left out, each has its default: batch, batchA and batchB 1, transA and transB false,
      // alpha 1, beta 0.
      batch?: number;
      batchA?: number;
      batchB?: number;
      transA?: boolean;
      transB?: boolean;
      alpha?: number;
      beta?: number;
    },
  ];
  conv2d: [
    [out: Float32Array, x: Float32Array, weight: Float32Array, bias: Float32Array | null],
    ConvAttrs,
  ];
  conv2d_backward_data: [
    [gradX: Float32Array, gradOut: Float32Array, weight: Float32Array],
    ConvAttrs,
  ];
  conv2d_backward_weight: [
    [gradWeight: Float32Array, gradOut: Float32Array, x: Float32Array],
    ConvAttrs,
  ];
  max_pool2d: [[out: Float32Array, indices: Int32Array, x: Float32Array], PoolAttrs];
  max_pool2d_backward: [
    [gradX: Float32Array, gradOut: Float32Array, indices: Int32Array],
    { n: number; c: number; h: number; w: number; oH: number; oW: number },
  ];
  softmax: [
    [out: Float32Array, x: Float32Array],
    { outer: number; dim: number; inner: number; log: boolean },
  ];
  softmax_backward: [
    [gradX: Float32Array, gradOut: Float32Array, y: Float32Array],
    { outer: number; dim: number; inner: number; log: boolean },
  ];
  gather: [
    [out: NativeBuffer, x: NativeBuffer, index: Int32Array],
    { outer: number; dim: number; inner: number; indexDim: number },
  ];
  scatter_add: [
    [out: NativeBuffer, index: Int32Array, src: NativeBuffer],
    { outer: number; dim: number; inner: number; indexDim: number },
  ];
  check_range: [
    [x: Float32Array | Float64Array],
    { low: number; high: number; op: string; name: string },
  ];
  nll_loss: [
    [out: Float32Array, logProbs: Float32Array, targets: Int32Array, weight: Float32Array | null],
    { n: number; c: number; inner: number; reduction: string; ignoreIndex: number },
  ];
  nll_loss_backward: [
    [
      gradLogProbs: Float32Array,
      gradOut: Float32Array,
      targets: Int32Array,
      weight: Float32Array | null,
    ],
    { n: number; c: number; inner: number; reduction: string; ignoreIndex: number },
  ];
  sgd_step: [
    [param: Float32Array, grad: Float32Array, momentumBuffer: Float32Array | null],
    SgdAttrs,
  ];
  /** sgd_step over `count` params at once: each item's buffers in sgd_step's order, 2 per item
   * (param, grad), 3 with momentum != 0 (momentumBuffer last). */
  sgd_steps: [(Float32Array | null)[], SgdAttrs & { count: number }];
  adam_step: [
    [
      param: Float32Array,
      grad: Float32Array,
      expAvg: Float32Array,
      expAvgSq: Float32Array,
      maxExpAvgSq: Float32Array | null,
    ],
    AdamAttrs,
  ];
  /** adam_step over `count` params at once: each item's buffers in adam_step's order, 4 per
   * item (param, grad, expAvg, expAvgSq), 5 with amsgrad (maxExpAvgSq last). */
  adam_steps: [(Float32Array | null)[], AdamAttrs & { count: number }];
  rmsprop_step: [
    [
      param: Float32Array,
      grad: Float32Array,
      squareAvg: Float32Array,
      gradAvg: Float32Array | null,
      momentumBuffer: Float32Array | null,
    ],
    RmspropAttrs,
  ];
  /** rmsprop_step over `count` params at once: each item's 5 buffers in rmsprop_step's order
   * (null where that step takes none). */
  rmsprop_steps: [(Float32Array | null)[], RmspropAttrs & { count: number }];
  adagrad_step: [[param: Float32Array, grad: Float32Array, stateSum: Float32Array], AdagradAttrs];
  /** adagrad_step over `count` params at once: param, grad and stateSum for each. */
  adagrad_steps: [Float32Array[], AdagradAttrs & { count: number }];
  rnn_forward: [
    [
      output: Float32Array,
      hN: Float32Array,
      cN: Float32Array | null,
      workspace: Float32Array,
      xProj: Float32Array,
      wHh: Float32Array,
      bHh: Float32Array | null,
      h0: Float32Array,
      c0: Float32Array | null,
      lengths: Int32Array | null,
    ],
    RnnAttrs,
  ];
  rnn_backward: [
    [
      gradXProj: Float32Array,
      gradWHh: Float32Array,
      gradBHh: Float32Array | null,
      gradH0: Float32Array,
      gradC0: Float32Array | null,
      gradOutput: Float32Array | null,
      gradHN: Float32Array | null,
      gradCN: Float32Array | null,
      workspace: Float32Array,
      wHh: Float32Array,
      h0: Float32Array,
      c0: Float32Array | null,
      lengths: Int32Array | null,
    ],
    RnnAttrs,
  ];
  slice: [[out: NativeBuffer, x: NativeBuffer], SliceAttrs];
  slice_assign: [[out: NativeBuffer, x: NativeBuffer], SliceAttrs];
  batch_norm: [
    [
      out: Float32Array,
      mean: Float32Array,
      variance: Float32Array,
      x: Float32Array,
      weight: Float32Array | null,
      bias: Float32Array | null,
      runningMean: Float32Array | null,
      runningVar: Float32Array | null,
    ],
    { n: number; c: number; inner: number; training: boolean; eps: number; momentum: number },
  ];
  batch_norm_backward: [
    [
      gradX: Float32Array,
      gradWeight: Float32Array | null,
      gradBias: Float32Array | null,
      gradOut: Float32Array,
      x: Float32Array,
      mean: Float32Array,
      variance: Float32Array,
      weight: Float32Array | null,
    ],
    { n: number; c: number; inner: number; training: boolean; eps: number },
  ];
  layer_norm: [
    [
      out: Float32Array,
      mean: Float32Array,
      rstd: Float32Array,
      x: Float32Array,
      weight: Float32Array | null,
      bias: Float32Array | null,
    ],
    { rows: number; normSize: number; eps: number },
  ];
  layer_norm_backward: [
    [
      gradX: Float32Array,
      gradWeight: Float32Array | null,
      gradBias: Float32Array | null,
      gradOut: Float32Array,
      x: Float32Array,
      mean: Float32Array,
      rstd: Float32Array,
      weight: Float32Array | null,
    ],
    { rows: number; normSize: number },
  ];
  embedding: [
    [out: Float32Array, weight: Float32Array, indices: Int32Array],
    { numEmbeddings: number; dim: number; count: number; paddingIdx: number },
  ];
  embedding_backward: [
    [gradWeight: Float32Array, gradOut: Float32Array, indices: Int32Array],
    { numEmbeddings: number; dim: number; count: number; paddingIdx: number },
  ];
  masked_softmax: [
    [out: Float32Array, scores: Float32Array, mask: Float32Array | null],
    { rows: number; cols: number; scale: number },
  ];
  avg_pool2d: [[out: Float32Array, x: Float32Array], AvgPoolAttrs];
  avg_pool2d_backward: [[gradX: Float32Array, gradOut: Float32Array], AvgPoolAttrs];
  adaptive_avg_pool2d: [[out: Float32Array, x: Float32Array], AdaptivePoolAttrs];
  adaptive_avg_pool2d_backward: [[gradX: Float32Array, gradOut: Float32Array], AdaptivePoolAttrs];
  ctc_loss: [
    [
      loss: Float32Array,
      logAlpha: Float64Array,
      logProbs: Float32Array,
      targets: Int32Array,
      inputLengths: Int32Array,
      targetLengths: Int32Array,
    ],
    CtcAttrs,
  ];
  ctc_loss_backward: [
    [
      gradLogProbs: Float32Array,
      gradLoss: Float32Array,
      logProbs: Float32Array,
      targets: Int32Array,
      inputLengths: Int32Array,
      targetLengths: Int32Array,
      logAlpha: Float64Array,
      loss: Float32Array,
    ],
    CtcAttrs,
  ];
  fused_attention: [
    [
      out: Float32Array,
      query: Float32Array,
      key: Float32Array,
      value: Float32Array,
      keyPadding: Uint8Array | null,
    ],
    AttentionAttrs,
  ];
  fused_attention_backward: [
    [
      gradQuery: Float32Array,
      gradKey: Float32Array,
      gradValue: Float32Array,
      gradOut: Float32Array,
      query: Float32Array,
      key: Float32Array,
      value: Float32Array,
      keyPadding: Uint8Array | null,
    ],
    AttentionAttrs,
  ];
}

export type NativeKernelName = keyof NativeKernels;

export interface NativeInfo {
  version: string;
  compiler: string;
  simd: string[]; // instruction sets compiled in
  cpuFeatures: string[]; // instruction sets this CPU has
  gemmKernel: string; // the GEMM micro-kernel chosen at run time
}

/** What the CUDA plugin found (native/cuda/plugin_api.h); see lib/backend/cuda/plugin.ts. */
export interface NativeCudaProbe {
  pluginError: string; // why the plugin could not be opened or used; "" when it answered
  runtimeVersion: number; // of the CUDA runtime linked into the plugin, e.g. 13000
  driverVersion: number; // the CUDA version the driver supports; 0 without a driver
  error: string; // why no GPU can be used; "" when one can
  devices: { name: string; computeCapability: string; totalMemory: number }[];
  libraries: { name: string; path: string; version: string; error: string }[];
}

/** The addon's exports. */
export interface NativeBinding {
  /** Runs one kernel synchronously; throws an Error with `code` on bad arguments. */
  run<K extends NativeKernelName>(
    op: K,
    buffers: NativeKernels[K][0],
    attrs: NativeKernels[K][1],
  ): void;
  /** Names of all kernels `run` accepts. */
  kernels(): string[];
  info(): NativeInfo;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setFlushDenormal(on: boolean): void;
  getFlushDenormal(): boolean;
  /** Opens the CUDA plugin at pluginPath and asks what it finds; never throws for a missing GPU. */
  cudaProbe(pluginPath: string, libraryDirs: string[]): NativeCudaProbe;
  /** Opens the plugin's memory and kernel interface, once per process. */
  cudaOpen(pluginPath: string): { flavour: string; kernels: string };
  /**
   * Device memory for `size` elements of a storage dtype, every byte set to fillByte
   * (default 0: zero-filled); -1 leaves it uninitialised.
   */
  cudaAlloc(
    device: number,
    dtype: NativeStorageDType,
    size: number,
    fillByte?: number,
  ): NativeCudaHandle;
  /** Returns the memory to the plugin's cache; idempotent. */
  cudaFree(handle: NativeCudaHandle): void;
  /** Host to device; the array holds exactly the buffer's bytes. */
  cudaUpload(handle: NativeCudaHandle, values: NativeBuffer): void;
  /** Device to host, after all work queued before it. */
  cudaDownload(handle: NativeCudaHandle, values: NativeBuffer): void;
  /** As cudaDownload, waiting on a worker thread. */
  cudaDownloadAsync(handle: NativeCudaHandle, values: NativeBuffer): Promise<void>;
  /** Queues the kernel `op` with the cpu kernel's buffers (as handles) and attributes. */
  cudaRun(
    device: number,
    op: string,
    buffers: (NativeCudaHandle | null)[],
    attrs: Record<string, unknown>,
  ): void;
  cudaSynchronize(device: number): void;
  cudaMemoryStats(device: number): NativeCudaMemoryStats;
  cudaEmptyCache(device: number): void;
  cudaWaitStats(device: number): NativeCudaWaitStats;
  /** The plugin's own kernel launches on the device since it loaded (not cuBLAS's, cuDNN's). */
  cudaLaunches(device: number): number;
  /** "allow_tf32" (0 or 1) or "memory_limit" (bytes, 0 for none). */
  cudaSetOption(name: string, value: number): void;
}

/** An opaque device buffer of the CUDA plugin. */
export type NativeCudaHandle = { readonly __cudaHandle: unique symbol };

/** The element types storage comes in (bool is stored as uint8). */
export type NativeStorageDType = "float32" | "float64" | "int32" | "uint8" | "int8";

/** The caching allocator's figures for one device, in bytes and counts. */
export interface NativeCudaMemoryStats {
  allocated: number;
  reserved: number;
  peakAllocated: number;
  liveBuffers: number;
  deviceAllocations: number;
  cacheHits: number;
  oomRetries: number;
}

/** How many times the host has waited for one device's stream, by what waited. */
export interface NativeCudaWaitStats {
  reads: number;
  synchronizes: number;
  uploads: number;
  allocations: number;
  other: number;
  /** The ops that read a value back inside, by kernel name (at most 64). */
  ops: Record<string, number>;
  /** Waits of ops past those 64. */
  opsLeftOut: number;
}

/** Names of the addon's exports, for the manifest check. */
export type NativeEntryPoint = keyof NativeBinding;

/** avg_pool2d over x [n, c, h, w]; divisorOverride 0 means none. */
export interface AvgPoolAttrs {
  n: number;
  c: number;
  h: number;
  w: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  ceilMode: boolean;
  countIncludePad: boolean;
  divisorOverride: number;
}

/** adaptive_avg_pool2d from x [n, c, h, w] to [n, c, oH, oW]; rank is x's, which must be 4. */
export interface AdaptivePoolAttrs {
  n: number;
  c: number;
  h: number;
  w: number;
  oH: number;
  oW: number;
  rank: number;
}

/** ctc_loss: logProbs [steps, batch, classes], targets [batch, maxTarget]. */
export interface CtcAttrs {
  steps: number;
  batch: number;
  classes: number;
  maxTarget: number;
  blank: number;
  zeroInfinity: boolean;
  rank: number;
  targetRank: number;
}

/**
 * fused_attention over query [batch, queries, dim], key [batch, keys, dim], value [batch,
 * keys, valueDim], keyPadding [batch / heads, keys]; the seed and offset key the dropout.
 */
export interface AttentionAttrs {
  batch: number;
  heads: number;
  queries: number;
  keys: number;
  dim: number;
  valueDim: number;
  scale: number;
  causal: boolean;
  dropoutP: number;
  seedLo: number;
  seedHi: number;
  offset: number;
}
