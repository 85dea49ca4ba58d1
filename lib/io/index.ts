// The io namespace: safetensors files, written atomically.
export * from "./safetensors.js";
