// Rebuild this folder from the full Fashion-MNIST IDX files:
//   node data/fashion-mnist-subset/make-subset.mjs <folder with the four *-ubyte.gz files>
// Keeps, in the original order, the first 600 training images of each class (6,000) and the
// first 100 test images of each class (1,000). Output: IDX files gzipped at level 9 (deterministic).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";

const src = process.argv[2];
if (!src) throw new Error("usage: node make-subset.mjs <full Fashion-MNIST folder>");
const out = dirname(fileURLToPath(import.meta.url));

for (const [prefix, perClass] of [["train", 600], ["t10k", 100]]) {
  const images = gunzipSync(readFileSync(join(src, `${prefix}-images-idx3-ubyte.gz`)));
  const labels = gunzipSync(readFileSync(join(src, `${prefix}-labels-idx1-ubyte.gz`)));
  const n = labels.readUInt32BE(4);
  const rows = images.readUInt32BE(8);
  const cols = images.readUInt32BE(12);
  const size = rows * cols;
  const counts = new Array(10).fill(0);
  const keep = [];
  for (let i = 0; i < n; i++) {
    const l = labels[8 + i];
    if (counts[l] < perClass) {
      counts[l]++;
      keep.push(i);
    }
  }
  const imgOut = Buffer.alloc(16 + keep.length * size);
  images.copy(imgOut, 0, 0, 16);
  imgOut.writeUInt32BE(keep.length, 4);
  const labOut = Buffer.alloc(8 + keep.length);
  labels.copy(labOut, 0, 0, 8);
  labOut.writeUInt32BE(keep.length, 4);
  keep.forEach((i, k) => {
    images.copy(imgOut, 16 + k * size, 16 + i * size, 16 + (i + 1) * size);
    labOut[8 + k] = labels[8 + i];
  });
  writeFileSync(join(out, `${prefix}-images-idx3-ubyte.gz`), gzipSync(imgOut, { level: 9 }));
  writeFileSync(join(out, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(labOut, { level: 9 }));
  console.log(prefix, keep.length, "images; last source index", keep[keep.length - 1]);
}
