#!/usr/bin/env python3
"""PyTorch eager peer of the GPU bench (src/main.rs): the same GPT (the nanoGPT reference model
of trainer/scripts/nanogpt_reference.py), the same two configurations, batch sizes and step
counts, f32 and bf16 autocast, on one CUDA GPU. Prints one JSON line per run, like the Rust
bench, so the two can be put side by side.

    python3 trainer/benches/gpu/torch_reference.py [steps]
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from nanogpt_reference import GPT  # noqa: E402


def bench(name, vocab, n_layer, n_head, n_embd, block, batch, steps, autocast):
    torch.manual_seed(1)
    dev = torch.device("cuda")
    model = GPT(vocab, n_layer, n_head, n_embd, block).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    g = torch.Generator().manual_seed(7)
    data = torch.randint(0, vocab, (200_000,), generator=g)
    data = torch.where(torch.rand(200_000, generator=g) < 0.9, torch.arange(200_000) % 50 % vocab, data).to(dev)

    def step():
        ix = torch.randint(0, data.numel() - block - 1, (batch,), device=dev)
        off = ix[:, None] + torch.arange(block, device=dev)[None, :]
        x, y = data[off], data[off + 1]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast == "bf16"):
            loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    first = step().item()  # warm-up
    torch.cuda.synchronize()
    start = time.time()
    for _ in range(steps):
        last = step()
    torch.cuda.synchronize()
    secs = time.time() - start
    return {"config": name, "engine": "pytorch-eager", "torch": torch.__version__, "batch": batch,
            "context": block, "steps": steps, "seconds": secs,
            "tokens_per_s": steps * batch * block / secs, "first_loss": first,
            "last_loss": last.item(), "autocast": autocast, "device": torch.cuda.get_device_name()}


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32, as in candle's default
    torch.backends.cudnn.allow_tf32 = False
    for autocast in ["f32", "bf16"]:
        print(json.dumps(bench("nanogpt-cpu-recipe", 65, 4, 4, 128, 64, 12, steps, autocast)), flush=True)
        print(json.dumps(bench("6x384-ctx256", 65, 6, 6, 384, 256, 64, steps // 2, autocast)), flush=True)


if __name__ == "__main__":
    main()
