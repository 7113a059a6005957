"""A minimal safetensors writer (F32 only) so the reference scripts need nothing beyond PyTorch."""
import json
import struct

import numpy as np


def write(path, tensors, metadata):
    names = sorted(tensors)
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for n in names:
        a = np.ascontiguousarray(tensors[n].detach().cpu().numpy().astype("<f4"))
        b = a.tobytes()
        header[n] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header)
    h += " " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h.encode())
        for b in blobs:
            f.write(b)
