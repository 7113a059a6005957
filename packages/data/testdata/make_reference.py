"""Reference files for @sit/data's tests, written by independent tools (run with Debian's python3:
python3-torchvision 0.14 and python3-scipy 1.10):

  /usr/bin/python3 packages/data/testdata/make_reference.py

- resample_reference.json: torchvision tensor resized crops (bicubic, bilinear down-sampling) and
  Resize + CenterCrop of the image_ops fixture's input (NCHW, [0, 1]).
- MATLAB v5 files as distributed by Oxford Flowers-102 (imagelabels.mat, setid.mat) and the
  Stanford Cars devkit (cars_train_annos.mat, cars_test_annos_withlabels.mat, cars_meta.mat),
  written by scipy.io.savemat with made-up contents (compressed and uncompressed).
"""
import json, os, struct
import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from scipy.io import savemat

here = os.path.dirname(os.path.abspath(__file__))
fx = os.path.join(here, "..", "..", "testing", "fixtures", "image_ops.safetensors")
raw = open(fx, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
a, b = header["input"]["data_offsets"]
x = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(header["input"]["shape"]).copy())

out = {}
bicubic = F.InterpolationMode.BICUBIC
bilinear = F.InterpolationMode.BILINEAR
# crop (top, left, height, width) -> size
out["bicubic_up"] = {"box": [3, 5, 12, 14], "size": [16, 16],
                     "output": F.resized_crop(x, 3, 5, 12, 14, [16, 16], interpolation=bicubic, antialias=False).clamp(0, 1)}
out["bicubic_down"] = {"box": [1, 2, 18, 20], "size": [7, 9],
                       "output": F.resized_crop(x, 1, 2, 18, 20, [7, 9], interpolation=bicubic, antialias=False).clamp(0, 1)}
out["bilinear_down"] = {"box": [0, 1, 19, 22], "size": [6, 8],
                        "output": F.resized_crop(x, 0, 1, 19, 22, [6, 8], interpolation=bilinear, antialias=False)}
ev = T.Compose([T.Resize(14, interpolation=bilinear, antialias=False), T.CenterCrop(12)])
out["resize14_centercrop12"] = {"output": ev(x)}
for v in out.values():
    t = v["output"]
    v["shape"] = list(t.shape)
    v["output"] = [float(f) for f in t.flatten().tolist()]
json.dump(out, open(os.path.join(here, "resample_reference.json"), "w"))

mat = os.path.join(here, "mat")
os.makedirs(mat, exist_ok=True)
# Flowers-102: labels 1..102 as a 1×N double row; setid trnid/valid/tstid as 1×N double rows.
labels = np.array([[1, 1, 2, 3, 2, 3, 1, 2, 3, 3]], dtype=np.float64)
savemat(os.path.join(mat, "imagelabels.mat"), {"labels": labels}, do_compression=False)
savemat(os.path.join(mat, "setid.mat"),
        {"trnid": np.array([[1, 3, 4]], dtype=np.float64), "valid": np.array([[2, 5, 6]], dtype=np.float64),
         "tstid": np.array([[7, 8, 9, 10]], dtype=np.float64)}, do_compression=True)
# Stanford Cars devkit: a 1×N struct array `annotations` with uint8/uint16 scalars and char fname.
def annos(rows, with_class=True):
    dt = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O")]
    if with_class:
        dt.append(("class", "O"))
    dt.append(("fname", "O"))
    arr = np.zeros((1, len(rows)), dtype=dt)
    for i, r in enumerate(rows):
        arr[0, i]["bbox_x1"] = np.array([[r[0]]], dtype=np.uint16)
        arr[0, i]["bbox_y1"] = np.array([[r[1]]], dtype=np.uint16)
        arr[0, i]["bbox_x2"] = np.array([[r[2]]], dtype=np.uint16)
        arr[0, i]["bbox_y2"] = np.array([[r[3]]], dtype=np.uint16)
        if with_class:
            arr[0, i]["class"] = np.array([[r[4]]], dtype=np.uint8)
        arr[0, i]["fname"] = r[5]
    return arr
train = [(1, 2, 30, 20, 2, "00001.jpg"), (3, 4, 25, 22, 1, "00002.jpg"), (0, 0, 10, 10, 3, "00003.jpg")]
test = [(5, 6, 20, 20, 3, "00001.jpg"), (1, 1, 9, 9, 1, "00002.jpg")]
savemat(os.path.join(mat, "cars_train_annos.mat"), {"annotations": annos(train)}, do_compression=True)
savemat(os.path.join(mat, "cars_test_annos_withlabels.mat"), {"annotations": annos(test)}, do_compression=False)
names = np.empty((1, 3), dtype=object)
for i, s in enumerate(["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]):
    names[0, i] = s
savemat(os.path.join(mat, "cars_meta.mat"), {"class_names": names}, do_compression=False)
print("ok")
