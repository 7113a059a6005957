import { describe, expect, it } from "vitest";
import { DATASET_SOURCES } from "../download/sources";
import { DATASETS, DATASET_NAMES, isDatasetName } from "./catalog";

describe("DATASETS", () => {
  it("names each download source once and reads where the download unpacks", () => {
    const sources = DATASET_NAMES.flatMap((n) => DATASETS[n].source ?? []);
    expect(new Set(sources).size).toBe(sources.length);
    expect([...sources].sort()).toEqual(Object.keys(DATASET_SOURCES).sort());
    for (const n of DATASET_NAMES) {
      const e = DATASETS[n];
      expect(e.readerDir, n).toBe(e.source ? DATASET_SOURCES[e.source].readerDir : ".");
      expect(e.numClasses, n).toBeGreaterThan(1);
    }
    expect(isDatasetName("cifar10")).toBe(true);
    expect(isDatasetName("cifar-10")).toBe(false);
  });
});
