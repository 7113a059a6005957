"""Recompute the SiT step of sit_step.safetensors in PyTorch from its own inputs and weights.

Why: the shared fixture's gradients are wrong for every parameter upstream of the reconstruction
head's last GELU (values ~1e22; its `after.*` weights are consistent with those values, because
per-tensor clipping of an overflowing norm zeroes them). Its losses, projections, reconstruction
and the gradients of `cls_head.*` and `rec_head.convTrans.*` are right. This script recomputes the
whole step (gradients, per-tensor clipping, AdamW with SiT's two groups, EMA, BatchNorm running
statistics) with PyTorch from the fixture's own inputs and weights, prints how each gradient
compares with the fixture, and with `--write OUT` saves the recomputed step under the fixture's
tensor names. Not used by the product. Run with Debian's PyTorch 1.13 (the fixtures' version):

    /usr/bin/python3 tools/reference/sit_step_check.py [FIXTURE] [--write OUT]
"""
import json, struct, sys
import numpy as np
import torch
import torch.nn.functional as F

args = [a for a in sys.argv[1:]]
out_path = None
if "--write" in args:
    i = args.index("--write"); out_path = args[i + 1]; del args[i:i + 2]
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
    # ConvTranspose2d with kernel = stride = p, written as a per-token matmul + unpatchify: this
    # PyTorch build's conv_transpose2d returns a wrong (and run-to-run varying) input gradient here,
    # which is what broke the shared fixture. The forward equals F.conv_transpose2d (checked below).
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

if out_path:
    from safetensors_write import write  # noqa: E402  (local helper beside this script)
    grads = {k: S[k].grad.detach().clone() for k in S}
    # SiT's clip_gradients: per tensor, coef = c / (norm + 1e-6) when below 1.
    for k, g in grads.items():
        norm = g.norm(2)
        coef = hyper["clip"] / (norm + 1e-6)
        if coef < 1:
            g.mul_(coef)
    params = {k: S[k].detach().clone().requires_grad_(True) for k in S}
    for k in params:
        params[k].grad = grads[k].clone()
    decay = [params[k] for k in sorted(params) if params[k].ndim > 1 and not k.endswith(".bias")]
    no_decay = [params[k] for k in sorted(params) if not (params[k].ndim > 1 and not k.endswith(".bias"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hyper["wd"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=hyper["lr"], betas=tuple(hyper["betas"]), eps=hyper["eps"])
    opt.step()
    mom = hyper["momentum"]
    teacher_after = {k: Tc[k] * mom + (1 - mom) * params[k].detach() for k in Tc}
    out = {"loss.total": loss.detach().reshape(1), "loss.contrastive": lc.detach().reshape(1), "loss.reconstruction": lr.detach().reshape(1),
           "out.student_proj": s.detach(), "out.teacher_proj": t.detach(), "out.reconstruction": r.detach()}
    out.update({f"grad.{k}": S[k].grad for k in S})
    out.update({f"after.student.{k}": params[k].detach() for k in params})
    out.update({f"after.teacher.{k}": v for k, v in teacher_after.items()})
    out.update({f"after.student_buffer.{k}": v for k, v in student_buf.items()})
    write(out_path, out, {"source": "tools/reference/sit_step_check.py: the SiT step of sit_step.safetensors recomputed with PyTorch " + torch.__version__ + " from that fixture's inputs and weights (its gradients upstream of rec_head.mlp.5 are wrong)",
                          "config": meta["config"], "hyper": meta["hyper"]})
    print("wrote", out_path)
