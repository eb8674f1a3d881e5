"""Peer SNN frameworks (snnTorch, SpikingJelly, Norse) training the same 784-800-10 network,
same T and batch, by BPTT with a surrogate gradient, each with its own standard recipe:

- snnTorch: nn.Linear + snn.Leaky per layer, stepped in a Python loop over t as in the
  snnTorch tutorials; fast-sigmoid surrogate; SF.mse_count_loss; Adam.
- SpikingJelly: layer.Linear + neuron.LIFNode in multi-step mode (step_mode="m", whole
  sequence per call), ATan surrogate, detach_reset; MSE of output firing rates; Adam.
- Norse: nn.Linear + LIFCell per layer stepped in a loop over t (Norse's MNIST tutorial);
  Norse's LIF has a current-based synapse like HM2-BP's neuron; SuperSpike surrogate (Norse's
  default); MSE of rates; Adam.
- snnTorch CNN (`python -m bench cnn`): mnist-cnn's shape 28x28-15C5-P2-40C5-P2-300-10 in the
  snnTorch CNN tutorial's form (Conv2d -> max_pool2d -> Leaky), same loss and optimizer.

Neuron constants mirror SPEC 1 where the model has them: membrane decay 1 - 1/64 per step
(tau_m = 64 steps) and, for Norse, tau_syn = 8 steps. Targets mirror SPEC 3: 35 spikes for the
label neuron and 5 for the others over T steps (as rates 35/T and 5/T). The input is the same
Poisson spike tensor as every other row, shape (T, B, 784) float32. float32 throughout.
All frameworks run with torch.set_num_threads(threads) (all cores by default).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import Skipped

DESIRED, UNDESIRED = 35, 5  # SPEC 3 targets (spike counts over T)
TAU_M, TAU_S = 64.0, 8.0  # SPEC 1, in steps
PEER_LR = 5e-4  # the snnTorch tutorials' Adam learning rate, used for all three


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError or a broken install: report, never fake
        raise Skipped(f"{module} not importable: {type(exc).__name__}: {exc}") from None


class TorchRunner:
    """Adapts a torch model whose forward maps (T, B, N) spikes to (T, B, O) output spikes."""

    def __init__(self, torch: Any, model: Any, loss_fn: Any, device: str, reset: Any = None):
        self.torch, self.model, self.loss_fn, self.device = torch, model, loss_fn, device
        self.reset = reset  # clears neuron state between batches (SpikingJelly)
        self.opt = torch.optim.Adam(model.parameters(), lr=PEER_LR)

    def prepare(self, spikes: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        x = self.torch.from_numpy(np.ascontiguousarray(spikes.transpose(1, 0, 2), np.float32))
        y = self.torch.from_numpy(np.asarray(labels, dtype=np.int64))
        return x.to(self.device), y.to(self.device)

    def _forward(self, x: Any) -> Any:
        if self.reset is not None:
            self.reset(self.model)
        return self.model(x)

    def train(self, batch: tuple[Any, Any]) -> dict:
        x, y = batch
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        out = self._forward(x)
        loss = self.loss_fn(out, y)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach())}

    def infer(self, batch: tuple[Any, Any]) -> dict:
        self.model.eval()
        with self.torch.no_grad():
            counts = self._forward(batch[0]).sum(0)
        return {"predictions": counts.argmax(1).cpu().numpy()}

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()


def _rate_mse(torch: Any, T: int, n_out: int) -> Any:
    """MSE between output firing rates and the SPEC-3 target rates (35/T label, 5/T others)."""
    def loss(out: Any, y: Any) -> Any:
        target = torch.full((len(y), n_out), UNDESIRED / T, device=out.device)
        target[torch.arange(len(y), device=out.device), y] = DESIRED / T
        return torch.nn.functional.mse_loss(out.mean(0), target)

    return loss


def _snntorch(torch: Any, layers: Sequence[int], T: int) -> tuple[Any, Any, Any, dict]:
    snn = _require("snntorch")
    surrogate = _require("snntorch.surrogate")
    SF = _require("snntorch.functional")
    nn = torch.nn
    beta = 1.0 - 1.0 / TAU_M

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))
            self.lif = nn.ModuleList(snn.Leaky(beta=beta, spike_grad=surrogate.fast_sigmoid())
                                     for _ in self.fc)

        def forward(self, x: Any) -> Any:
            mem = [lif.init_leaky() for lif in self.lif]
            out = []
            for t in range(x.shape[0]):
                h = x[t]
                for k, (fc, lif) in enumerate(zip(self.fc, self.lif)):
                    h, mem[k] = lif(fc(h), mem[k])
                out.append(h)
            return torch.stack(out)

    loss = SF.mse_count_loss(correct_rate=DESIRED / T, incorrect_rate=UNDESIRED / T)
    facts = {"neuron": f"snn.Leaky(beta={beta:.6f})", "surrogate": "fast_sigmoid",
             "loss": "SF.mse_count_loss(35/T, 5/T)", "loop": "python loop over t"}
    return Net(), loss, None, facts


def _spikingjelly(torch: Any, layers: Sequence[int], T: int) -> tuple[Any, Any, Any, dict]:
    _require("spikingjelly")
    neuron = _require("spikingjelly.activation_based.neuron")
    layer = _require("spikingjelly.activation_based.layer")
    surrogate = _require("spikingjelly.activation_based.surrogate")
    functional = _require("spikingjelly.activation_based.functional")
    mods: list[Any] = []
    for a, b in zip(layers[:-1], layers[1:]):
        mods += [layer.Linear(a, b),
                 neuron.LIFNode(tau=TAU_M, decay_input=False, detach_reset=True,
                                surrogate_function=surrogate.ATan())]
    model = torch.nn.Sequential(*mods)
    functional.set_step_mode(model, "m")
    facts = {"neuron": f"LIFNode(tau={TAU_M}, decay_input=False)", "surrogate": "ATan",
             "loss": "MSE of rates vs 35/T, 5/T", "step_mode": "m", "backend": "torch"}
    return model, _rate_mse(torch, T, layers[-1]), functional.reset_net, facts


def _norse(torch: Any, layers: Sequence[int], T: int) -> tuple[Any, Any, Any, dict]:
    _require("norse")
    nt = _require("norse.torch")
    dt = 1e-3  # Norse's time unit: one step = 1 ms
    p = nt.LIFParameters(tau_syn_inv=torch.as_tensor(1.0 / (TAU_S * dt)),
                         tau_mem_inv=torch.as_tensor(1.0 / (TAU_M * dt)))
    nn = torch.nn

    class Net(nn.Module):
        # LIFCell stepped in a loop over t, as in Norse's MNIST tutorial. (The sequence module
        # LIF slices a grad-carrying (T, B, n) tensor per step, whose backward costs O(T^2):
        # 10x slower here, not a fair picture of Norse.)
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))
            self.lif = nn.ModuleList(nt.LIFCell(p, dt=dt) for _ in self.fc)

        def forward(self, x: Any) -> Any:
            state: list[Any] = [None] * len(self.fc)
            out = []
            for t in range(x.shape[0]):
                h = x[t]
                for k, (fc, lif) in enumerate(zip(self.fc, self.lif)):
                    h, state[k] = lif(fc(h), state[k])
                out.append(h)
            return torch.stack(out)

    facts = {"neuron": "LIFCell (current synapse, tau_mem 64, tau_syn 8 steps)",
             "surrogate": "SuperSpike", "loss": "MSE of rates vs 35/T, 5/T",
             "loop": "python loop over t"}
    return Net(), _rate_mse(torch, T, layers[-1]), None, facts


def _snntorch_cnn(torch: Any, layers: Sequence[int], T: int) -> tuple[Any, Any, Any, dict]:
    """The mnist-cnn shape 28x28-15C5-P2-40C5-P2-300-10 in snnTorch's own CNN recipe (its
    convolutional tutorial): Conv2d -> max_pool2d -> Leaky per stage, so the pools are not
    spiking layers of their own as in HM2-BP; `layers` is unused."""
    snn = _require("snntorch")
    surrogate = _require("snntorch.surrogate")
    SF = _require("snntorch.functional")
    nn, F = torch.nn, torch.nn.functional
    beta = 1.0 - 1.0 / TAU_M

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 15, 5), nn.Conv2d(15, 40, 5)
            self.fc1, self.fc2 = nn.Linear(40 * 4 * 4, 300), nn.Linear(300, 10)
            self.lif = nn.ModuleList(snn.Leaky(beta=beta, spike_grad=surrogate.fast_sigmoid())
                                     for _ in range(4))

        def forward(self, x: Any) -> Any:
            mem = [lif.init_leaky() for lif in self.lif]
            out = []
            for t in range(x.shape[0]):
                h = x[t].reshape(-1, 1, 28, 28)
                h, mem[0] = self.lif[0](F.max_pool2d(self.conv1(h), 2), mem[0])
                h, mem[1] = self.lif[1](F.max_pool2d(self.conv2(h), 2), mem[1])
                h, mem[2] = self.lif[2](self.fc1(h.flatten(1)), mem[2])
                h, mem[3] = self.lif[3](self.fc2(h), mem[3])
                out.append(h)
            return torch.stack(out)

    loss = SF.mse_count_loss(correct_rate=DESIRED / T, incorrect_rate=UNDESIRED / T)
    facts = {"neuron": f"snn.Leaky(beta={beta:.6f})", "surrogate": "fast_sigmoid",
             "loss": "SF.mse_count_loss(35/T, 5/T)", "loop": "python loop over t",
             "network": "conv5(15)-maxpool2-LIF-conv5(40)-maxpool2-LIF-300-LIF-10-LIF"}
    return Net(), loss, None, facts


_BUILDERS = {"snntorch": _snntorch, "spikingjelly": _spikingjelly, "norse": _norse,
             "snntorch-cnn": _snntorch_cnn}


def make(
    name: str, layers: Sequence[int], T: int, threads: int, device: str = "auto"
) -> tuple[TorchRunner, dict[str, Any]]:
    """(runner, facts) for a peer framework; Skipped when it (or torch) is not importable or
    the device is not usable. device: "cpu", "cuda" or "auto" (cuda when torch sees one)."""
    if name not in _BUILDERS:
        raise ValueError(f"peer must be one of {', '.join(_BUILDERS)}, got {name!r}")
    torch = _require("torch")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise Skipped(f"torch {torch.__version__} sees no CUDA device")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, loss_fn, reset, facts = _BUILDERS[name](torch, list(layers), T)
    runner = TorchRunner(torch, model.to(device), loss_fn, device, reset)
    facts = {"device": device, "dtype": "float32", "threads": torch.get_num_threads(),
             "optimizer": f"Adam(lr={PEER_LR})", "torch": torch.__version__, **facts}
    return runner, facts
