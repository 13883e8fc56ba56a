"""Rebuilds a stdl network in plain PyTorch from its checkpoint and runs it on N-MNIST
samples: the readout logits summed over the time steps match stdl's within 1e-4.

    pip install ./python torch
    python examples/python/torch_forward.py CHECKPOINT_DIR [N-MNIST .bin files...] [--t-bins 10]

CHECKPOINT_DIR is any stdl checkpoint (`stdl train --out OUT` writes OUT/checkpoint;
`stdl stream --checkpoint-dir DIR`; `stdl.Learner.save(DIR)`). `model.safetensors` holds
every tensor by name, `s{k}.body.{i}.{weight,bias,gain}` for layer `i` of subnetwork `k`'s
body and `s{k}.head.{i}.*` for its head (auxiliary network, or the readout of the last
subnetwork), each flat, in row-major order:

- conv `weight`: `(C_out, C_in, k, k)`; `gain`: `(C_out,)`, the scaled weight
  standardisation's gain (present when the preset's `norm` is `ws`, the default):
  `ŵ = gain · (w − mean(w)) / sqrt(var(w) · n + 1e-4)` per output channel over its
  `n = C_in·k·k` weights, `var` unbiased; `bias`: `(C_out,)`;
- linear `weight`: `(outputs, inputs)`, `bias`: `(outputs,)`;
- batchnorm `gamma`, `beta`, `running_mean`, `running_var`: `(C,)`; at inference
  `y = gamma · (x − running_mean) / sqrt(running_var + 1e-5) + beta`;
- LIF, average pooling and flatten have no tensors. LIF: `u = (1 − 1/τ)·û + I`, a spike
  where `u ≥ θ`, then `û = u − θ·spike` (soft reset), `û` zero at the start of a sample.

At inference only each subnetwork's body and the last subnetwork's head (the readout) are
used: auxiliary networks train, and are discarded. `stdl.Learner(...).layers` lists that
chain with shapes, constants and tensor prefixes; this script builds it from that list.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

import stdl


def load_safetensors(path: pathlib.Path) -> dict:
    """The f32 tensors of a safetensors file (a small reader: no extra package)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        if v["dtype"] != "F32":
            raise ValueError(f"{name}: {v['dtype']}, expected F32")
        a, b = v["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").copy())
    return out


class TorchNet:
    """The inference chain in plain PyTorch, with the LIF membranes as state."""

    def __init__(self, layers: list, tensors: dict):
        self.layers, self.tensors = layers, tensors
        self.ops = [self._op(l) for l in layers]
        self.reset()

    def reset(self):
        self.membranes = [None] * len(self.layers)

    def _op(self, l: dict):
        t = lambda name: self.tensors[f"{l['prefix']}.{name}"]
        kind = l["kind"]
        if kind == "conv":
            (cin, _, _), (cout, _, _), k = l["in"], l["out"], l["kernel"]
            w = t("weight").reshape(cout, cin * k * k)
            if l["weight_standardisation"]:
                mean = w.mean(dim=1, keepdim=True)
                var = w.var(dim=1, unbiased=True, keepdim=True)
                w = t("gain")[:, None] * (w - mean) / torch.sqrt(var * (cin * k * k) + l["ws_eps"])
            w, b = w.reshape(cout, cin, k, k), t("bias")
            return lambda x: F.conv2d(x, w, b, stride=l["stride"], padding=l["padding"])
        if kind == "linear":
            fan_in, fan_out = int(np.prod(l["in"])), int(np.prod(l["out"]))
            w, b = t("weight").reshape(fan_out, fan_in), t("bias")
            return lambda x: F.linear(x.reshape(x.shape[0], -1), w, b)
        if kind == "avgpool":
            return lambda x: F.avg_pool2d(x, tuple(l["kernel"]))
        if kind == "flatten":
            return lambda x: x.reshape(x.shape[0], -1)
        if kind == "batchnorm":
            g, b = t("gamma")[None, :, None, None], t("beta")[None, :, None, None]
            m, v = t("running_mean")[None, :, None, None], t("running_var")[None, :, None, None]
            return lambda x: g * (x - m) / torch.sqrt(v + l["eps"]) + b
        if kind == "lif":
            return None  # stateful: see step
        raise NotImplementedError(kind)

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> torch.Tensor:
        for i, (l, op) in enumerate(zip(self.layers, self.ops)):
            if l["kind"] == "lif":
                decay, theta = 1.0 - 1.0 / l["tau"], l["threshold"]
                u_hat = self.membranes[i]
                u = x if u_hat is None else decay * u_hat + x
                spikes = (u >= theta).to(x.dtype)
                self.membranes[i] = u - theta * spikes
                x = spikes
            else:
                x = op(x)
        return x


def summed_logits(step, frames: np.ndarray) -> np.ndarray:
    return sum(np.asarray(step(f), dtype=np.float64) for f in frames)


def compare(checkpoint: pathlib.Path, files: list, t_bins: int = 10) -> float:
    """The largest difference between stdl's and PyTorch's summed logits over `files`."""
    learner = stdl.Learner.load(checkpoint)
    net = TorchNet(learner.layers, load_safetensors(checkpoint / "model.safetensors"))
    c, h, w = learner.input_shape
    worst = 0.0
    for path in files:
        ev, size = stdl.read(path, sensor_size=(w, h))
        frames = stdl.to_frames(ev, size, n_event_bins=t_bins, edge="to_last")
        learner.reset()
        ours = summed_logits(learner.predict, frames)
        net.reset()
        theirs = summed_logits(lambda f: net.step(torch.from_numpy(f)[None])[0].numpy(), frames)
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=pathlib.Path)
    ap.add_argument("files", nargs="*", type=pathlib.Path)
    ap.add_argument("--t-bins", type=int, default=10)
    a = ap.parse_args()
    files = a.files or sorted((pathlib.Path(__file__).resolve().parents[2].parent / "shared/data/nmnist/slayer_NMNISTsmall").rglob("*.bs2"))[:20]
    worst = compare(a.checkpoint, files, a.t_bins)
    print(f"{len(files)} samples: largest difference of the summed logits {worst:.2e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
