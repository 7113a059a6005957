"""Recompute the SiT step of sit_step.safetensors in PyTorch from its own inputs and weights.

Why: an earlier copy of the fixture had wrong gradients for every parameter upstream of the
reconstruction head's last GELU (values ~1e22). The cause was Debian's float32 PyTorch 1.13
`gelu_backward`, which returns wrong values when the incoming gradient is not contiguous, as the
gradient coming back through `conv_transpose2d` (the reconstruction head's last layer) is; float64
is right. The fixture was regenerated with the transposed convolution written as a per-token
matmul, whose gradient reaches the GELU contiguous. This script recomputes the whole step that way
and prints how the losses and every gradient compare with the fixture, then shows the cause in
isolation. Not used by the product. Run with Debian's PyTorch 1.13 (the fixtures' version):

    /usr/bin/python3 tools/reference/sit_step_check.py [FIXTURE]
"""
import json, struct, sys
import numpy as np
import torch
import torch.nn.functional as F

args = sys.argv[1:]
path = args[0] if args else "packages/testing/fixtures/sit_step.safetensors"
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__")
T = {}
for k, e in header.items():
    s, t = e["data_offsets"]
    T[k] = torch.from_numpy(np.frombuffer(raw[8 + n + s:8 + n + t], dtype=np.float32).copy().reshape(e["shape"]))
cfg = json.loads(meta["config"]); hyper = json.loads(meta["hyper"])
D, H, p, B = cfg["dim"], cfg["heads"], cfg["patch"], cfg["batch"]

def vit(W, x):
    z = F.conv2d(x, W["patch_embed.proj.weight"], W["patch_embed.proj.bias"], stride=p)
    z = z.flatten(2).transpose(1, 2)
    z = torch.cat([W["cls_token"].expand(z.shape[0], -1, -1), z], 1) + W["pos_embed"]
    for i in range(cfg["depth"]):
        g = lambda name: W[f"blocks.{i}.{name}"]
        h = F.layer_norm(z, (D,), g("norm1.weight"), g("norm1.bias"), 1e-6)
        qkv = F.linear(h, g("attn.qkv.weight"), g("attn.qkv.bias")).reshape(z.shape[0], z.shape[1], 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = ((q @ k.transpose(-2, -1)) * (D // H) ** -0.5).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(z.shape[0], z.shape[1], D)
        z = z + F.linear(o, g("attn.proj.weight"), g("attn.proj.bias"))
        h = F.layer_norm(z, (D,), g("norm2.weight"), g("norm2.bias"), 1e-6)
        z = z + F.linear(F.gelu(F.linear(h, g("mlp.fc1.weight"), g("mlp.fc1.bias"))), g("mlp.fc2.weight"), g("mlp.fc2.bias"))
    return F.layer_norm(z, (D,), W["norm.weight"], W["norm.bias"], 1e-6)

def new_buffers():
    hid, out = cfg["proj_hidden"], cfg["proj_out"]
    return {f"cls_head.mlp.{j}.{b}": (torch.zeros(w) if b == "running_mean" else torch.ones(w))
            for j, w in ((1, hid), (4, hid), (7, out)) for b in ("running_mean", "running_var")}

def cls_head(W, c, buf):
    bn = lambda h, j, affine: F.batch_norm(h, buf[f"cls_head.mlp.{j}.running_mean"], buf[f"cls_head.mlp.{j}.running_var"],
                                           W[f"cls_head.mlp.{j}.weight"] if affine else None, W[f"cls_head.mlp.{j}.bias"] if affine else None, True, 0.1, 1e-5)
    h = F.linear(c, W["cls_head.mlp.0.weight"], W["cls_head.mlp.0.bias"])
    h = F.relu(bn(h, 1, True))
    h = F.linear(h, W["cls_head.mlp.3.weight"], W["cls_head.mlp.3.bias"])
    h = F.gelu(bn(h, 4, True))
    h = F.linear(h, W["cls_head.mlp.6.weight"], W["cls_head.mlp.6.bias"])
    return bn(h, 7, False)

def rec_head(W, t):
    for j in (0, 2, 4):
        t = F.gelu(F.linear(t, W[f"rec_head.mlp.{j}.weight"], W[f"rec_head.mlp.{j}.bias"]))
    side = int(t.shape[1] ** 0.5)
    # ConvTranspose2d with kernel = stride = p, written as a per-token matmul + unpatchify, as the
    # fixture was made: conv_transpose2d's input gradient comes back non-contiguous, and this
    # PyTorch build's float32 gelu_backward gets such a gradient wrong (shown at the end). The
    # forward equals F.conv_transpose2d (checked below).
    w = W["rec_head.convTrans.weight"]  # [D, C, p, p]
    C = w.shape[1]
    y = t @ w.reshape(D, C * p * p)  # [B, N, C*p*p]
    y = y.reshape(t.shape[0], side, side, C, p, p).permute(0, 3, 1, 4, 2, 5).reshape(t.shape[0], C, side * p, side * p)
    y = y + W["rec_head.convTrans.bias"].reshape(1, C, 1, 1)
    with torch.no_grad():
        ref = F.conv_transpose2d(t.transpose(1, 2).reshape(t.shape[0], D, side, side), w, W["rec_head.convTrans.bias"], stride=p)
        assert (ref - y).abs().max().item() < 1e-5, "matmul form differs from conv_transpose2d"
    return y

S = {k[8:]: v.clone().requires_grad_(True) for k, v in T.items() if k.startswith("student.")}
Tc = {k[8:]: v for k, v in T.items() if k.startswith("teacher.")}
x = torch.cat([T["x1"], T["x2"]]); c = torch.cat([T["c1"], T["c2"]]); m = torch.cat([T["m1"], T["m2"]]).expand(-1, 3, -1, -1)
tok = vit(S, c)
student_buf, teacher_buf = new_buffers(), new_buffers()
s = cls_head(S, tok[:, 0], student_buf); r = rec_head(S, tok[:, 1:])
with torch.no_grad():
    t = cls_head(Tc, vit(Tc, x)[:, 0], teacher_buf)
tau = hyper["tau"]
def cl(q, k):
    q = F.normalize(q, dim=1); k = F.normalize(k, dim=1)
    return F.cross_entropy(q @ k.t() / tau, torch.arange(q.shape[0])) * 2 * tau
lc = cl(s[:B], t[B:]) + cl(s[B:], t[:B])
lr = ((r - x).abs() * m).sum() / m.sum()
loss = lc + hyper["lam"] * lr
loss.backward()
print(json.dumps({"loss": [loss.item(), T["loss.total"].item()], "lc": [lc.item(), T["loss.contrastive"].item()], "lr": [lr.item(), T["loss.reconstruction"].item()]}))
for k in sorted(S):
    g = S[k].grad
    ref = T.get("grad." + k)
    if ref is None:
        print(f"{k:40s} no fixture gradient"); continue
    rel = (g - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
    print(f"{k:40s} fixture max|g| {ref.abs().max().item():.4e}  recomputed {g.abs().max().item():.4e}  rel.diff {rel:.2e}")

# The cause, in isolation: the gradient that conv_transpose2d hands back to the tokens is not
# contiguous, and float32 gelu_backward is wrong on it (float64, or a contiguous copy, is right).
tok_in = torch.randn(2 * B, (cfg["img"] // p) ** 2, D)
grad_in = torch.randn(2 * B, 3, cfg["img"], cfg["img"])
t_req = tok_in.clone().requires_grad_(True)
img = F.conv_transpose2d(t_req.transpose(1, 2).reshape(2 * B, D, cfg["img"] // p, -1), S["rec_head.convTrans.weight"].detach(), stride=p)
(g_tok,) = torch.autograd.grad(img, t_req, grad_in)
for dtype in (torch.float32, torch.float64):
    x_, g_ = tok_in.to(dtype), g_tok.to(dtype)
    wrong = (torch.ops.aten.gelu_backward(g_, x_) - torch.ops.aten.gelu_backward(g_.contiguous(), x_)).abs().max().item()
    print(f"gelu_backward {dtype}: gradient contiguous {g_.is_contiguous()}, max |non-contiguous - contiguous| {wrong:.3e}")
