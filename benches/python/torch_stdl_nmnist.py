"""The `nmnist` preset trained online with STDL in PyTorch, for `stdl bench train`'s speed
comparison (issue: "at least 2x faster than the same network trained online in PyTorch on
the same CPU").

    python3 benches/python/torch_stdl_nmnist.py [--threads 2] [--batches 20] [--t-bins 10] [--batch 16]

The same computation as `stdl bench train --preset nmnist --method stdl`: input 2x34x34 spike
frames (synthetic, each pixel on with probability 0.1); subnetwork 0 = scaled-WS conv 2->32
(k3, p1) + LIF + 2x2 average pool with a bare auxiliary head (global average pool + linear
32->10); subnetwork 1 = scaled-WS conv 32->64 + LIF + pool + linear readout 4096->10. LIF:
tau 2 (decay 0.5), threshold 1, soft reset, sigmoid surrogate (alpha 4), the membrane
detached across time. Every time step, each subnetwork computes its cross-entropy loss,
backpropagates within itself (its input detached) and takes an Adam step (lr 1e-3).
Prints milliseconds per sample and per sample-step, as `stdl bench train` does.

`--neuron spikingjelly` swaps the LIF layer for SpikingJelly's own `LIFNode` (pip install
spikingjelly) with the same equations: tau 2 without input decay (`decay_input=False`, so
u = (1 - 1/tau) u + i), threshold 1, soft reset (`v_reset=None`), `surrogate.Sigmoid(alpha=4)`,
single-step mode; its membrane is detached after every step, as STDL defines.
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return g * ctx.alpha * s * (1 - s), None


class Lif(nn.Module):
    def __init__(self, tau=2.0, threshold=1.0, alpha=4.0):
        super().__init__()
        self.decay, self.threshold, self.alpha = 1 - 1 / tau, threshold, alpha
        self.u = None

    def reset(self):
        self.u = None

    def forward(self, i):
        u = i if self.u is None else self.decay * self.u + i
        s = Spike.apply(u - self.threshold, self.alpha)
        self.u = (u - self.threshold * s).detach()  # detached across time (STDL)
        return s


class SjLif(nn.Module):
    """SpikingJelly's LIFNode with the equations of `Lif`, detached across time."""

    def __init__(self):
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate

        self.node = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=None,
                                   surrogate_function=surrogate.Sigmoid(alpha=4.0))

    def reset(self):
        self.node.reset()

    def forward(self, i):
        s = self.node(i)
        if isinstance(self.node.v, torch.Tensor):
            self.node.v = self.node.v.detach()
        return s


LIF = Lif


class WsConv(nn.Conv2d):
    """Scaled weight standardisation with a learned gain per output channel."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 3, padding=1)
        self.gain = nn.Parameter(torch.ones(cout, 1, 1, 1))

    def forward(self, x):
        w = self.weight
        fan_in = w[0].numel()
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        var = w.var(dim=(1, 2, 3), keepdim=True, unbiased=True)
        w = self.gain * (w - mean) / torch.sqrt(var * fan_in + 1e-4)
        return F.conv2d(x, w, self.bias, padding=1)


class Sub0(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.lif, self.aux = WsConv(2, 32), LIF(), nn.Linear(32, 10)

    def forward(self, x):
        h = F.avg_pool2d(self.lif(self.conv(x)), 2)
        return h, self.aux(h.mean(dim=(2, 3)))


class Sub1(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.lif, self.readout = WsConv(32, 64), LIF(), nn.Linear(64 * 8 * 8, 10)

    def forward(self, x):
        h = F.avg_pool2d(self.lif(self.conv(x)), 2)
        return self.readout(h.flatten(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--t-bins", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--neuron", choices=["torch", "spikingjelly"], default="torch")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    global LIF
    LIF = SjLif if a.neuron == "spikingjelly" else Lif
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    subs = [Sub0(), Sub1()]
    opts = [torch.optim.Adam(s.parameters(), lr=1e-3) for s in subs]
    labels = torch.arange(a.batch) % 10

    def run_batch():
        for s in subs:
            s.lif.reset()
        for _ in range(a.t_bins):
            x = (torch.rand(a.batch, 2, 34, 34) < a.density).float()
            # Subnetwork 0: its auxiliary head's loss, its own update.
            h, logits = subs[0](x)
            opts[0].zero_grad(set_to_none=True)
            F.cross_entropy(logits, labels).backward()
            opts[0].step()
            # Subnetwork 1 learns from the detached spikes of subnetwork 0.
            logits = subs[1](h.detach())
            opts[1].zero_grad(set_to_none=True)
            F.cross_entropy(logits, labels).backward()
            opts[1].step()

    run_batch()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.batches):
        run_batch()
    dt = time.perf_counter() - t0
    n = a.batches * a.batch
    if a.json:
        import json

        print(json.dumps({"neuron": a.neuron, "torch": torch.__version__, "threads": a.threads,
                          "t_bins": a.t_bins, "batch": a.batch, "samples": n,
                          "seconds_per_sample": dt / n}))
        return
    print(
        f"pytorch {torch.__version__} ({a.neuron} LIF) nmnist STDL T={a.t_bins} batch {a.batch} on {a.threads} threads: "
        f"{dt / n * 1e3:.2f} ms per sample, {dt / n / a.t_bins * 1e3:.3f} ms per sample-step "
        f"({n} samples in {dt:.2f} s); a 1,000-sample epoch: {dt / n * 1000:.1f} s"
    )


if __name__ == "__main__":
    main()
