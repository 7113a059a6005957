#!/usr/bin/env python3
"""Load a backbone written by `sit export` into a PyTorch ViT with timm's module structure.

Used by packages/cli/src/export.test.ts with Debian's /usr/bin/python3 + torch. The model below
is written from timm's `VisionTransformer` layout (patch_embed.proj Conv2d, cls_token, pos_embed,
blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2, norm; no classifier head),
so `load_state_dict(strict=True)` fails on any name or shape that timm would not accept.

Usage: timm_vit_check.py <backbone.safetensors> <images.f32> <B,H,W,C>
Prints one JSON object: {"available", "names", "shapes", "cls"} (cls: final-norm CLS tokens).
Without torch it prints {"available": false, "note": ...} and exits 0.
"""
import json
import struct
import sys


def read_safetensors(path, torch):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise SystemExit(f"{name}: expected F32, got {info['dtype']}")
        start, end = info["data_offsets"]
        buf = bytearray(raw[base + start : base + end])
        tensors[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(info["shape"]).clone()
    return tensors, meta


def main() -> int:
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as exc:  # torch absent: say so, the test skips
        print(json.dumps({"available": False, "note": f"torch not importable with {sys.executable}: {exc}"}))
        return 0

    path, images_path, shape_text = sys.argv[1:4]
    sd, meta = read_safetensors(path, torch)
    arch = json.loads(meta["architecture"])
    dim, depth, heads = arch["embed_dim"], arch["depth"], arch["num_heads"]
    patch, chans = arch["patch_size"], arch["in_chans"]
    img_h, img_w = arch["img_size"]
    hidden = int(round(dim * arch["mlp_ratio"]))
    eps = arch["layer_norm_eps"]

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(dim, 3 * dim, bias=arch["qkv_bias"])
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, d = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1)
            return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=eps)
            self.attn = Attention()
            self.norm2 = nn.LayerNorm(dim, eps=eps)
            self.mlp = Mlp()

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class VisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = PatchEmbed()
            n = (img_h // patch) * (img_w // patch)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
            self.blocks = nn.ModuleList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim, eps=eps)

        def forward(self, x):
            x = self.patch_embed(x)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x)

    model = VisionTransformer().eval()
    model.load_state_dict(sd, strict=True)  # raises on any missing, unexpected or mis-shaped entry

    b, h, w, c = (int(v) for v in shape_text.split(","))
    with open(images_path, "rb") as f:
        data = bytearray(f.read())
    x = torch.frombuffer(data, dtype=torch.float32).reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        cls = model(x)[:, 0]
    print(
        json.dumps(
            {
                "available": True,
                "torch": torch.__version__,
                "names": sorted(model.state_dict().keys()),
                "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
                "cls": cls.reshape(-1).tolist(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
