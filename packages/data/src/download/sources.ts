/** One file of a dataset's distribution. */
export interface RemoteFile {
  url: string;
  /** Local name (default: the URL's last path segment). */
  filename?: string;
  /** Expected MD5 (hex); verified when given. */
  md5?: string;
  /** Expected SHA-256 (hex); verified when given (in addition to md5). */
  sha256?: string;
  /** Unpack after verification: tar (optionally gzipped), zip, or gunzip of a single file. */
  extract?: "tar" | "zip" | "gunzip";
}

/** A downloadable dataset: its files and where its reader should point afterwards. */
export interface DatasetSource {
  name: string;
  files: readonly RemoteFile[];
  /** Folder (relative to the download directory) that the matching loader reads. */
  readerDir: string;
  /** Where the checksums come from, and anything unverified. */
  checksumNote: string;
}

const MNIST_FILES = [
  ["train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"],
  ["train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"],
  ["t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"],
  ["t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"],
] as const;

const FASHION_MNIST_FILES = [
  ["train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"],
  ["train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"],
  ["t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"],
  ["t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"],
] as const;

const VGG = "https://www.robots.ox.ac.uk/~vgg/data";

/**
 * Datasets with stable public URLs. MD5s are those published by torchvision's dataset classes
 * (and the CIFAR page), as recalled — none could be checked against the real archives here (no
 * internet); a mismatch fails loudly, and `downloadDataset` accepts your own checksums.
 * Stanford Cars is absent: its original host no longer serves the files.
 */
export const DATASET_SOURCES: Readonly<Record<string, DatasetSource>> = {
  mnist: {
    name: "mnist",
    files: MNIST_FILES.map(([f, md5]) => ({
      url: `https://ossci-datasets.s3.amazonaws.com/mnist/${f}`,
      md5,
    })),
    readerDir: ".",
    checksumNote: "torchvision MNIST md5s",
  },
  "fashion-mnist": {
    name: "fashion-mnist",
    files: FASHION_MNIST_FILES.map(([f, md5]) => ({
      url: `http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/${f}`,
      md5,
    })),
    readerDir: ".",
    checksumNote:
      "torchvision FashionMNIST md5s (the project's own copy is a re-compressed mirror with other md5s, so these are not checked here)",
  },
  "cifar-10": {
    name: "cifar-10",
    files: [
      {
        url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        md5: "c32a1d4ab5d03f1284b67883e8d87530",
        extract: "tar",
      },
    ],
    readerDir: "cifar-10-batches-bin",
    checksumNote:
      "md5 of the binary version as listed on the CIFAR page (torchvision itself uses the python version)",
  },
  "cifar-100": {
    name: "cifar-100",
    files: [
      {
        url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        md5: "03b5dce01913d631647c71ecec9e9cb8",
        extract: "tar",
      },
    ],
    readerDir: "cifar-100-binary",
    checksumNote: "md5 of the binary version as listed on the CIFAR page",
  },
  "stl-10": {
    name: "stl-10",
    files: [
      {
        url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        md5: "91f7769df0f17e558f3565bffb0c7dfb",
        extract: "tar",
      },
    ],
    readerDir: "stl10_binary",
    checksumNote: "torchvision STL10 tgz md5",
  },
  "flowers-102": {
    name: "flowers-102",
    files: [
      {
        url: `${VGG}/flowers/102/102flowers.tgz`,
        md5: "52808999861908f626f3c1f4e79d11fa",
        extract: "tar",
      },
      { url: `${VGG}/flowers/102/imagelabels.mat`, md5: "e0620be6f572b9609742df49c70aed4d" },
      { url: `${VGG}/flowers/102/setid.mat`, md5: "a5357ecc9cb78c4bef273ce3793fc85c" },
    ],
    readerDir: ".",
    checksumNote: "torchvision Flowers102 md5s",
  },
  "oxford-pets": {
    name: "oxford-pets",
    files: [
      {
        url: `${VGG}/pets/data/images.tar.gz`,
        md5: "5c4f3ee8e5d25df40f4fd59a7f44e54c",
        extract: "tar",
      },
      {
        url: `${VGG}/pets/data/annotations.tar.gz`,
        md5: "95a8c909bbe2e81eed6a22bccdf3f68f",
        extract: "tar",
      },
    ],
    readerDir: ".",
    checksumNote: "torchvision OxfordIIITPet md5s",
  },
  "cub-200-2011": {
    name: "cub-200-2011",
    files: [
      {
        url: "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        md5: "97eceeb196236b17998738112f37df78",
        extract: "tar",
      },
    ],
    readerDir: "CUB_200_2011",
    checksumNote:
      "UNSURE: md5 as commonly used by third-party loaders (torchvision has no CUB class); URL is CaltechDATA's",
  },
  "fgvc-aircraft": {
    name: "fgvc-aircraft",
    files: [{ url: `${VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz`, extract: "tar" }],
    readerDir: "fgvc-aircraft-2013b",
    checksumNote:
      "UNVERIFIED: no published checksum (torchvision downloads it without one); pass your own md5/sha256",
  },
};
