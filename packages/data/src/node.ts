// Public API of @sit/data/node: what only Node can do. Datasets read from files (IDX, CIFAR and
// STL-10 binaries, image folders and the paper datasets' splits, MATLAB files), image decoding
// with sharp and its worker pool, the bundled Fashion-MNIST subset, verified downloads and
// archives. Everything else (datasets in memory, transforms, the loader) is @sit/data's.
export { loadFashionMnist, loadIdxDataset, loadMnistLike, readIdx } from "./datasets/idx-files";
export {
  CifarDataset,
  Stl10Dataset,
  loadCifar10,
  loadCifar100,
  type CifarOptions,
} from "./datasets/binary";
export { RecordFiles } from "./datasets/records";
export {
  FileListDataset,
  ImageFolderDataset,
  IMAGE_EXTENSIONS,
  scanImageFolder,
  type ImageFilesOptions,
} from "./datasets/image-files";
export { DecodePool, decodeImageFile, type DecodeOptions } from "./datasets/decode";
export {
  loadCub200,
  loadFgvcAircraft,
  loadFlowers102,
  loadOxfordPets,
  loadStanfordCars,
} from "./datasets/splits";
export { parseMat, readMat, type MatValue } from "./datasets/matlab";
export {
  BUNDLED_FASHION_MNIST_DIR,
  findBundledFashionMnist,
  loadBundledFashionMnist,
} from "./datasets/bundled";
export {
  downloadDataset,
  hashFile,
  type DownloadOptions,
  type DownloadResult,
  type DownloadedFile,
} from "./download/download";
export { extractArchive } from "./download/extract";
