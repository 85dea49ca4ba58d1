// The data namespace: datasets, the DataLoader and the MNIST readers.
export * from "./dataset.js";
export * from "./dataloader.js";
export * from "./mnist.js";
export * from "./idx.js";
export * from "./text.js";
export * from "./imdb.js";
