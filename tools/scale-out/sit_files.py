"""Files of the scale-out path: safetensors, the sit-torch folder, atomic writes.

The sit-torch folder is what `sit export --format sit-torch` writes and `sit import` reads
(packages/cli/src/commands/sit-torch.ts): state.safetensors (tensors in PyTorch layouts) and
state.json (everything else, with the tensors file's SHA-256, so a mismatched pair is refused).
Debian's python3-torch has no `safetensors` module, so the format (8-byte header length, JSON
header, raw little-endian data) is read and written here.
"""
import hashlib
import json
import os
import struct
import tempfile

import numpy as np
import torch

TENSORS, JSON = "state.safetensors", "state.json"
# safetensors dtype → (torch dtype, little-endian numpy dtype)
_DTYPES = {"F32": (torch.float32, "<f4"), "F64": (torch.float64, "<f8"), "I32": (torch.int32, "<i4"), "I64": (torch.int64, "<i8")}
_NAMES = {v[0]: k for k, v in _DTYPES.items()}


class FormatError(Exception):
    """A file that is not what the scale-out path expects (named in the message)."""


def write_atomic(path, data: bytes):
    """Write `data` to a temporary file beside `path`, fsync, then rename: never a partial file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def torch_save_atomic(obj, path):
    """`torch.save` through a temporary file and a rename (a crash never leaves half a checkpoint)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def serialize_safetensors(tensors, metadata=None) -> bytes:
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _NAMES:
            raise FormatError(f"tensor {name!r}: dtype {t.dtype} cannot be written (float32, float64, int32, int64)")
        raw = t.numpy().astype(_DTYPES[_NAMES[t.dtype]][1], copy=False).tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def parse_safetensors(raw: bytes, source: str):
    if len(raw) < 8:
        raise FormatError(f"{source}: truncated (no header)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise FormatError(f"{source}: truncated header ({n} bytes announced)")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base, tensors = 8 + n, {}
    for name, info in header.items():
        if info["dtype"] not in _DTYPES:
            raise FormatError(f"{source}: tensor {name!r}: unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        if base + end > len(raw):
            raise FormatError(f"{source}: tensor {name!r} runs past the end of the file (truncated)")
        array = np.frombuffer(raw[base + start : base + end], dtype=_DTYPES[info["dtype"]][1])
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).astype(array.dtype.newbyteorder("="), copy=True))
    return tensors, meta


def read_sit_torch(folder):
    """(tensors, json) of a sit-torch folder; refuses a tensors file the JSON does not name."""
    paths = [os.path.join(folder, f) for f in (TENSORS, JSON)]
    for p in paths:
        if not os.path.isfile(p):
            raise FormatError(f"{p}: not found (expected a sit-torch folder from `sit export --format sit-torch`)")
    raw = open(paths[0], "rb").read()
    doc = json.load(open(paths[1]))
    if doc.get("format") != "sit-torch" or doc.get("version") != 1:
        raise FormatError(f"{paths[1]}: expected format sit-torch version 1, got {doc.get('format')!r} {doc.get('version')!r}")
    digest = hashlib.sha256(raw).hexdigest()
    if doc.get("tensors_sha256") != digest:
        raise FormatError(f"{paths[0]}: SHA-256 {digest} is not the {doc.get('tensors_sha256')!r} that {paths[1]} names")
    tensors, _ = parse_safetensors(raw, paths[0])
    return tensors, doc


def write_sit_torch(folder, tensors, doc):
    """Tensors first, then the JSON naming their checksum (both atomic)."""
    raw = serialize_safetensors(tensors, {"format": "pt", "content": "sit-torch"})
    write_atomic(os.path.join(folder, TENSORS), raw)
    doc = {**doc, "tensors_sha256": hashlib.sha256(raw).hexdigest()}
    write_atomic(os.path.join(folder, JSON), (json.dumps(doc, indent=1) + "\n").encode())
