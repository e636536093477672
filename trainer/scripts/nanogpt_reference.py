#!/usr/bin/env python3
"""PyTorch reference for the nanoGPT CPU recipe, the yardstick of edgeloop's trainer.

Same model and recipe as `cargo run --release -p edgeloop-trainer --bin nanogpt-bench`:
char-level GPT, 4 layers, 4 heads, width 128, context 64, batch 12, AdamW (lr 1e-3,
betas 0.9/0.99, weight decay 0.1 on matrices), 100 warmup steps then cosine to 1e-4 at 2000,
gradient clipping at 1.0, no dropout, tied embeddings, exact GELU, pre-norm blocks with biases,
GPT-2 init (std 0.02, residual projections 0.02/sqrt(2 n_layer)). The first 90% of the text is
the training split, the rest validation; validation loss is the mean over evenly spaced windows
(the same windows as the Rust bench).

Not run in CI (PyTorch is large and not in python/requirements.txt). Usage:
    python trainer/scripts/nanogpt_reference.py --text input.txt --threads 2 --json out.json
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(c)
        self.q, self.k, self.v, self.o = (nn.Linear(c, c) for _ in range(4))
        self.ln_2 = nn.LayerNorm(c)
        self.fc = nn.Linear(c, 4 * c)
        self.proj = nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        y = self.ln_1(x)
        split = lambda z: z.view(b, t, self.h, c // self.h).transpose(1, 2)
        a = F.scaled_dot_product_attention(split(self.q(y)), split(self.k(y)), split(self.v(y)), is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, c))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, n_layer, n_head, n_embd, block):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("o.weight", "proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-windows", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    text = open(a.text, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    T, B = 64, 12
    model = GPT(len(chars), 4, 4, 128, T)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)

    def lr_at(step):
        if step < 100:
            return 1e-3 * (step + 1) / 100
        if step >= a.iters:
            return 1e-4
        p = (step - 100) / (a.iters - 100)
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * p)) * (1e-3 - 1e-4)

    start = time.time()
    for step in range(a.iters):
        ix = torch.randint(len(train) - T, (B,))
        x = torch.stack([train[i:i + T] for i in ix])
        y = torch.stack([train[i + 1:i + T + 1] for i in ix])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0:
            print(f"step {step}: train loss {loss.item():.4f}", flush=True)
    elapsed = time.time() - start
    model.eval()
    starts = [i * (len(val) - T) // a.eval_windows for i in range(a.eval_windows)]
    total = 0.0
    with torch.no_grad():
        for k in range(0, len(starts), B):
            chunk = starts[k:k + B]
            x = torch.stack([val[i:i + T] for i in chunk])
            y = torch.stack([val[i + 1:i + T + 1] for i in chunk])
            total += model(x, y).item() * len(chunk)
    result = {"val_loss": total / len(starts), "tokens_per_s": a.iters * B * T / elapsed,
              "train_seconds": elapsed, "threads": a.threads, "torch": torch.__version__}
    print(json.dumps(result))
    if a.json:
        json.dump(result, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
