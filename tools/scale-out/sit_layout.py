"""The SiT code's module layout (FullPipline), written from the method's description (docs/method.md).

`FullPipline(backbone, head, head_recons)`: a timm/DINO ViT (cls_token, pos_embed,
patch_embed.proj, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}, norm), the
projection head `head.mlp` (Linear, BN, ReLU, Linear, BN, GELU, Linear, BN without affine) and the
reconstruction head `head_recons` (mlp: 3 × Linear+GELU; convTrans: ConvTranspose2d, kernel =
stride = patch). Inside DDP every key gains `module.`. The tools check every key and shape
against this layout themselves: the SiT code resumes with strict=False and would ignore a
misnamed key.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12)}


class LayoutError(Exception):
    """A state that does not have the SiT code's layout; the message names every difference."""


class PatchEmbed(nn.Module):
    def __init__(self, chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def drop_path(x, rate, training):
    """Stochastic depth per sample (§2 of the method): drop the residual branch, rescale the kept ones."""
    if rate == 0.0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= rate
    return x * keep / (1 - rate)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, rate):
        super().__init__()
        self.rate = rate
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.rate, self.training)


class VisionTransformer(nn.Module):
    def __init__(self, arch, drop_path_rate=0.0):
        super().__init__()
        dim, depth = arch["embed_dim"], arch["depth"]
        grid = arch["img_size"] // arch["patch_size"]
        self.patch_embed = PatchEmbed(arch["in_chans"], dim, arch["patch_size"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(dim, arch["num_heads"], arch["mlp_ratio"], r) for r in rates)
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class CLSHead(nn.Module):
    def __init__(self, dim, out_dim, hidden):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.GELU(),
            nn.Linear(hidden, out_dim), nn.BatchNorm1d(out_dim, affine=False),
        )

    def forward(self, x):
        return self.mlp(x)


class RECHead(nn.Module):
    def __init__(self, dim, chans, patch):
        super().__init__()
        self.patch, self.chans = patch, chans
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim), nn.GELU())
        self.convTrans = nn.ConvTranspose2d(dim, chans, kernel_size=patch, stride=patch)

    def forward(self, tokens):
        # ConvTranspose2d with kernel = stride is one matmul per token followed by unpatchify.
        # Written as a matmul because Debian's float32 PyTorch 1.13 computes wrong GELU gradients
        # when the incoming gradient is not contiguous, as conv_transpose2d's is
        # (tools/reference/sit_step_check.py); the weights are the module's, unchanged.
        b, n, d = tokens.shape
        g, p, c = int(math.isqrt(n)), self.patch, self.chans
        w = self.convTrans.weight.reshape(d, c * p * p)
        pixels = (self.mlp(tokens).reshape(b * n, d) @ w).reshape(b, g, g, c, p, p)
        image = pixels.permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * p, g * p)
        return image + self.convTrans.bias.view(1, c, 1, 1)


class FullPipline(nn.Module):
    """The SiT code's network (its spelling): backbone, projection head, reconstruction head."""

    def __init__(self, arch, out_dim, drop_path_rate=0.0):
        super().__init__()
        self.backbone = VisionTransformer(arch, drop_path_rate)
        self.head = CLSHead(arch["embed_dim"], out_dim, arch["head_hidden_dim"])
        self.head_recons = RECHead(arch["embed_dim"], arch["in_chans"], arch["patch_size"])

    def forward(self, x, recons=True):
        out = self.backbone(x)
        return self.head(out[:, 0]), (self.head_recons(out[:, 1:]) if recons else None)


class Wrapped(nn.Module):
    """What DDP does to state-dict keys (`module.` in front), for single-process use."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def build(arch, out_dim, drop_path_rate=0.0):
    return FullPipline(arch, out_dim, drop_path_rate)


def params_groups(model, prefix="module."):
    """The SiT code's two AdamW groups: "regularized" (all but biases and 1-D tensors), then
    "not regularized" (weight decay 0); each in named_parameters order, as PyTorch numbers them."""
    regularized, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if name.endswith(".bias") or p.ndim == 1 else regularized).append((prefix + name, p))
    return regularized, plain


def check_state_dict(model, state, what):
    """Every key of `model.state_dict()` (with `module.`) present with its shape, and nothing else."""
    own = {f"module.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    shapes = sorted(f"{k} (expected {list(own[k])}, got {list(got[k])})" for k in set(own) & set(got) if own[k] != got[k])
    problems = [f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else "", f"mis-shaped {shapes}" if shapes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise LayoutError(f"{what}: not the SiT code's FullPipline layout: " + "; ".join(problems))


def check_optimizer(model, state, what="optimizer"):
    """PyTorch AdamW state_dict structure for the SiT code's groups: sizes, indices, moment
    shapes, one common step. Returns (names in PyTorch's numbering, step)."""
    regularized, plain = params_groups(model)
    groups = state.get("param_groups", [])
    sizes = [len(regularized), len(plain)]
    if len(groups) != 2 or [len(g["params"]) for g in groups] != sizes:
        raise LayoutError(f"{what}: expected 2 param groups of {sizes} parameters, got {[len(g['params']) for g in groups]}")
    named = regularized + plain
    indices = list(groups[0]["params"]) + list(groups[1]["params"])
    if sorted(indices) != indices or len(set(indices)) != len(indices):
        raise LayoutError(f"{what}: parameter indices must count up across the groups, got {indices}")
    if groups[1].get("weight_decay") != 0:
        raise LayoutError(f"{what}: group 1 (not regularized) must have weight_decay 0, got {groups[1].get('weight_decay')}")
    steps = set()
    for position, index in enumerate(indices):
        entry = state["state"].get(index)
        if entry is None:
            continue
        name, p = named[position]
        for key in ("exp_avg", "exp_avg_sq"):
            if key not in entry or tuple(entry[key].shape) != tuple(p.shape):
                got = tuple(entry[key].shape) if key in entry else None
                raise LayoutError(f"{what}: state {index} ({name}) {key}: expected shape {list(p.shape)}, got {got}")
        steps.add(float(entry["step"]))
    if len(state["state"]) not in (0, len(indices)):
        raise LayoutError(f"{what}: state for {len(state['state'])} of {len(indices)} parameters")
    if len(steps) > 1:
        raise LayoutError(f"{what}: parameters at different steps {sorted(steps)}")
    return [n for n, _ in named], int(steps.pop()) if steps else 0


def architecture_of(state, args):
    """The architecture of an official checkpoint, from its weights' shapes and `args.model`."""
    sd = {k[len("module.") :]: v for k, v in state.items()}
    dim, chans, patch, _ = sd["backbone.patch_embed.proj.weight"].shape
    tokens = sd["backbone.pos_embed"].shape[1] - 1
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("backbone.blocks."))
    heads = PRESETS.get(args.get("model"), (None, None, args.get("num_heads")))[2]
    if heads is None:
        raise LayoutError(f"args.model {args.get('model')!r} is none of {sorted(PRESETS)}: the number of heads is unknown")
    return {
        "img_size": int(math.isqrt(tokens)) * patch,
        "patch_size": patch,
        "in_chans": chans,
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": sd["backbone.blocks.0.mlp.fc1.weight"].shape[0] / dim,
        "head_hidden_dim": sd["head.mlp.0.weight"].shape[0],
    }
