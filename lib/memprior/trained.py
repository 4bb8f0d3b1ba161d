"""Trained diffusion priors on the FWI training sets (chapter 7).

The paper's central FWI result needs a diffusion prior *trained* on N velocity models: its
samples sit next to training models at small N, and less so as N grows.  This module trains
such priors, on the training sets of :mod:`memprior.fwi`, with the library's one training
loop (:func:`memprior.diffusion.train_denoiser`: an MLP noise predictor, Adam with cosine
decay, EMA weights, seeded, cached on disk):

* :func:`train_prior` returns a :class:`TrainedPrior`: the network (``.denoiser``, with
  ``.denoise(x_t, t)`` and ``.eps(x_t, t)``), its ``.schedule`` and its training set
  ``.x_train`` in the coordinates the network models (z-scored KL coefficients);
* :func:`training_data`: the training set of size N, the one
  :meth:`memprior.experiments.fwi.FWIExperiment.training_set` returns for ``N <= max(sizes)``;
* :data:`DEFAULTS`: the tuned training settings, and the shipped weights:
  :func:`shipped_specs` (what the book uses), :func:`write_weights` and the command

  .. code-block:: bash

      python -m memprior.trained --write [DIR] [--jobs J]

  which trains whatever is missing from ``DIR`` (default: the package folder
  ``memprior/data/priors``), ``J`` networks at a time, one CPU thread each.

The setting is the paper's (SCIENCE.md §7, §9): d = K^2 = 100 KL coefficients, z-scored
per dimension with the training set's own statistics; the linear schedule, betas from 1e-4
to 0.02 over 200 steps.

Shipped weights and the cache
-----------------------------
The weights of a prior are defined as the EMA weights rounded to float16 (a relative change
below 5e-4), which is how they are stored: a network loaded from its file is the network
:func:`train_prior` returns after training, bit for bit.  A file is keyed by the requested
settings: the data recipe (grid, K, pool seed and size, N) with a fingerprint of the training
set (rounded to 1e-4, so that last-bit differences between BLAS builds do not break the
match), the schedule, the network and optimizer settings and the seed.  :func:`train_prior`
loads the shipped file when the key matches; otherwise it trains, through the cache of
:func:`memprior.diffusion.train_denoiser`.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import diffusion
from . import velocity as V
from ._cli import (check_output_dir, nonneg_int, positive_float, positive_int, run as run_cli, seed_int,
                   unit_float)
from ._checks import as_tensor, check_int, check_nonneg, check_positive, check_seed

__all__ = [
    "DEFAULTS", "SIZES", "WIDTHS", "N_STEPS", "SAMPLERS", "TrainedPrior", "train_prior", "training_data",
    "prior_key", "weights_dir", "weights_file", "weights_path", "save_prior", "shipped_specs", "write_weights",
    "main",
]

#: The tuned training settings of :func:`train_prior` (one network: about 52 s of CPU time on one core).
DEFAULTS = dict(hidden=256, depth=3, steps=10000, lr=6e-3, batch_size=256, ema_decay=0.995, n_freq=8)

#: Diffusion steps of the paper's linear schedule (betas 1e-4..0.02).
N_STEPS = 200

#: Training-set sizes of the shipped memorization sweep (the book's 50, 200 and 1000 among them).
SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

#: Network widths of the shipped phase diagram (the default width is the last).
WIDTHS = (64, 128, 256)

#: The unconditional samplers of :meth:`TrainedPrior.sample`.
SAMPLERS = ("ddpm", "ddim")

_FORMAT = "memprior-trained-prior-v1"
_TRAIN_KEYS = tuple(DEFAULTS)


def _fwi():
    # memprior.fwi re-exports this module at its end, so it is imported when first needed
    return importlib.import_module("memprior.fwi")


def weights_dir() -> Path:
    """The package folder of the shipped weights, ``memprior/data/priors``."""
    return Path(__file__).resolve().parent / "data" / "priors"


# ----------------------------------------------------------------------------- the training sets
def _config(config):
    fwi = _fwi()
    if config is None:
        return fwi.FWIConfig()
    if not isinstance(config, fwi.FWIConfig):
        raise TypeError(f"config: expected a memprior.fwi.FWIConfig, got {type(config).__name__}")
    return config


def _pool_size(n_train: int, cfg) -> int:
    return max(n_train, max(cfg.sizes))


def training_data(n_train: int, config=None):
    """The training set of size ``n_train`` for the FWI configuration ``config``.

    The first ``n_train`` models of the seeded pool of ``max(n_train, max(config.sizes))``
    random-field models (:func:`memprior.fwi.random_field_models` on the configuration's grid,
    ``K`` modes per direction, seed ``config.seed``), z-scored with their own statistics: for
    ``n_train <= max(config.sizes)`` exactly the set of
    :meth:`memprior.experiments.fwi.FWIExperiment.training_set`.  Larger sets come from a larger
    pool, whose first rows agree with the smaller pool's to rounding (about 1e-14).

    Parameters
    ----------
    n_train : int >= 2
    config : memprior.fwi.FWIConfig, optional
        Default ``FWIConfig()`` (the book's 32 x 32 grid, K = 10, d = 100).

    Returns
    -------
    memprior.fwi.TrainingSet
    """
    n_train = check_int("n_train", n_train, low=2)
    cfg = _config(config)
    fwi = _fwi()
    basis = V.KLBasis(cfg.grid, cfg.grid, K=cfg.K)
    z, m = fwi.random_field_models(basis, _pool_size(n_train, cfg), cfg.seed)
    z, m = z[:n_train].clone(), m[:n_train].clone()
    u, mu, s = fwi.zscore(z)
    return fwi.TrainingSet(z=z, u=u, mu=mu, s=s, m=m, index=torch.arange(n_train))


# ----------------------------------------------------------------------------- the prior
@dataclass(frozen=True)
class TrainedPrior:
    """A diffusion prior trained on one FWI training set.

    Attributes
    ----------
    denoiser : memprior.diffusion.MLPDenoiser
        The network (EMA weights rounded to float16, frozen, on the CPU), with
        ``.denoise(x_t, t)``, ``.eps(x_t, t)``, ``.dim`` and ``.x_train``.
    schedule : memprior.diffusion.Schedule
        The schedule it was trained on (time ``t`` indexes it).
    x_train : Tensor [N, d], float64
        The training set in the network's coordinates: z-scored KL coefficients.
    z_train : Tensor [N, d], float64
        The same in raw KL coefficients (where the paper measures memorization).
    mu, s : Tensor [d]
        The z-scoring statistics: ``z = mu + s * u``.
    seed : int
        Seed of the initialization and of the minibatches.
    settings : dict
        The training settings (``hidden``, ``depth``, ``steps``, ``lr``, ``batch_size``,
        ``ema_decay``, ``n_freq``) and the data recipe (``grid``, ``K``, ``pool_seed``,
        ``pool_size``, ``n_steps``).
    key : str
        The key of the weights (see :func:`prior_key`).
    source : {"shipped", "cache", "trained"}
        Where the weights came from in this call.
    train_seconds, train_cpu_seconds : float
        Wall time and CPU time of the training run that made the weights (s; for shipped weights,
        as recorded when they were written; NaN for weights from the training cache).  Training
        runs on one thread, so the CPU time is the wall time on an idle core: the number to hold
        against the budget of 90 s per network when the machine is shared.
    history : dict
        ``{"step": [...], "loss": [...]}``: the mean training loss per logging window.
    """

    denoiser: diffusion.MLPDenoiser
    schedule: diffusion.Schedule
    x_train: torch.Tensor
    z_train: torch.Tensor
    mu: torch.Tensor
    s: torch.Tensor
    seed: int
    settings: dict
    key: str
    source: str
    train_seconds: float
    train_cpu_seconds: float
    history: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        """N, the number of training models."""
        return int(self.x_train.shape[0])

    @property
    def dim(self) -> int:
        """d, the number of KL coefficients."""
        return int(self.x_train.shape[1])

    def to_z(self, u) -> torch.Tensor:
        """Raw KL coefficients ``[B, d]`` of z-scored ``u [B, d]``."""
        u = as_tensor("u", u, ndim=2)
        return self.mu + self.s * u.to(torch.float64)

    def to_u(self, z) -> torch.Tensor:
        """z-scored coordinates ``[B, d]`` of raw coefficients ``z [B, d]``."""
        z = as_tensor("z", z, ndim=2)
        return (z.to(torch.float64) - self.mu) / self.s

    def sample(self, n: int, *, seed: int = 0, sampler: str = "ddpm", init: str = "standard",
               steps: int | None = None) -> torch.Tensor:
        """Unconditional samples, ``[n, d]`` z-scored, float64.

        Parameters
        ----------
        n : int >= 1
        seed : int
            Seeds the starting points (and the DDPM noise).
        sampler : {"ddpm", "ddim"}
            ``"ddpm"`` (default): ancestral sampling, the trained model's own reverse process.
            ``"ddim"``: the deterministic DDIM path (the one the paper's DPS variant follows); it does
            not correct the network's errors on the way, and lands on training models less often.
        init : {"standard", "marginal"}
            ``"standard"`` (default, the paper's unconditional sampling): start from N(0, I), which
            is the terminal marginal of the population (z-scored data have unit variance).
            ``"marginal"``: start from the terminal marginal of the *training set*, which already
            points at training models (at ``alpha_bar[T-1] = 0.13`` and d = 100 a noised training
            model is identifiable), so it inflates memorization.
        steps : int, optional
            Visit only ``steps`` evenly spaced levels (default all of them).
        """
        seed = check_seed(seed, "seed")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: must be one of {SAMPLERS}, got {sampler!r}")
        run = diffusion.ddpm_sample if sampler == "ddpm" else diffusion.ddim_sample
        g = torch.Generator().manual_seed(check_seed(seed, "seed"))
        with torch.no_grad():
            x = run(self.denoiser, self.schedule, check_int("n", n, low=1), generator=g, init=init, steps=steps)
        return x.to(torch.float64)

    def __repr__(self) -> str:
        st = self.settings
        return (f"TrainedPrior(N={self.n_train}, d={self.dim}, {st['hidden']}x{st['depth']} MLP, "
                f"{st['steps']} steps at lr {st['lr']:g}, seed {self.seed}, {self.source})")


def _settings(kw: dict) -> dict:
    st = dict(DEFAULTS)
    for k, v in kw.items():
        if v is not None:
            st[k] = v
    st["hidden"] = check_int("hidden", st["hidden"], low=1)
    st["depth"] = check_int("depth", st["depth"], low=0)
    st["steps"] = check_int("steps", st["steps"], low=1)
    st["lr"] = check_positive("lr", st["lr"])
    st["batch_size"] = check_int("batch_size", st["batch_size"], low=1)
    st["ema_decay"] = check_nonneg("ema_decay", st["ema_decay"])
    if st["ema_decay"] >= 1:
        raise ValueError(f"ema_decay: must be in [0, 1), got {st['ema_decay']}")
    st["n_freq"] = check_int("n_freq", st["n_freq"], low=1)
    return st


def _fingerprint(u: torch.Tensor) -> str:
    q = np.round(u.detach().to(torch.float64).numpy() * 1e4).astype(np.int64)
    return hashlib.sha256(q.tobytes() + str(q.shape).encode()).hexdigest()[:16]


def prior_key(x_train, settings: dict, seed: int, recipe: dict | None = None, device: str = "cpu") -> str:
    """The key of a prior's weights: a hash of everything that determines them.

    Parameters
    ----------
    x_train : Tensor [N, d]
        The z-scored training set (fingerprinted after rounding to 1e-4).
    settings : dict
        The training settings (the keys of :data:`DEFAULTS`, plus ``n_steps``).
    seed : int
    recipe : dict, optional
        How the data were made (grid, K, pool seed and size).
    device : str
        The device type of training; part of the key unless ``"cpu"``.

    Returns
    -------
    str (24 hexadecimal digits)
    """
    seed = check_seed(seed, "seed")
    u = as_tensor("x_train", x_train, ndim=2)
    blob = dict(format=_FORMAT, data=_fingerprint(u), shape=list(u.shape), recipe=recipe or {},
                settings={k: settings[k] for k in sorted(settings)}, seed=int(seed))
    if device != "cpu":
        blob["device"] = device
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:24]


def weights_file(directory, n_train: int, settings: dict, seed: int, key: str) -> Path:
    """Path of a prior's weight file in ``directory`` (a readable name, then the key)."""
    seed = check_seed(seed, "seed")
    return Path(directory) / (f"prior-N{n_train}-{settings['hidden']}x{settings['depth']}-"
                              f"{settings['steps']}steps-seed{seed}-{key}.pt")


def _request(n_train, seed, config, kw: dict, device, directory):
    """Checked arguments of a request: ``(n_train, seed, config, settings, device, folder)``."""
    n_train = check_int("n_train", n_train, low=2)
    seed = check_seed(seed, "seed")
    cfg = _config(config)
    st = _settings(kw)
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from err
    return n_train, seed, cfg, st, dev, weights_dir() if directory is None else Path(directory)


def _resolve(n_train, seed, cfg, st, dev, folder):
    """The training data, schedule, data recipe, key and weight file of a checked request."""
    ts = training_data(n_train, cfg)
    recipe = dict(grid=cfg.grid, K=cfg.K, pool_seed=cfg.seed, pool_size=_pool_size(n_train, cfg),
                  n_steps=N_STEPS)
    key = prior_key(ts.u, {**st, "n_steps": N_STEPS}, seed, recipe, dev.type)
    return ts, diffusion.Schedule.linear(N_STEPS), recipe, key, weights_file(folder, n_train, st, seed, key)


def weights_path(n_train: int, *, seed: int = 0, config=None, directory=None, device=None, **settings) -> Path:
    """The weight file that :func:`train_prior` with these arguments loads when it exists.

    ``settings`` are the training settings of :func:`train_prior` (``hidden``, ``steps``, ...);
    ``directory`` defaults to the package folder.  Nothing is trained or loaded.
    """
    seed = check_seed(seed, "seed")
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"settings: unknown training settings {sorted(unknown)}; accepted: {sorted(DEFAULTS)}")
    n_train, seed, cfg, st, dev, folder = _request(n_train, seed, config, settings, device, directory)
    return _resolve(n_train, seed, cfg, st, dev, folder)[-1]


_MEMO: dict = {}


def train_prior(n_train: int, *, seed: int = 0, config=None, hidden: int | None = None, depth: int | None = None,
                steps: int | None = None, lr: float | None = None, batch_size: int | None = None,
                ema_decay: float | None = None, n_freq: int | None = None, device=None, cache: bool = True,
                shipped: bool = True, directory=None, show_progress: bool = True) -> TrainedPrior:
    """A diffusion prior trained on the FWI training set of size ``n_train``: shipped, cached or trained.

    The network is the MLP noise predictor of :func:`memprior.diffusion.train_denoiser`, trained on
    :func:`training_data` (z-scored KL coefficients) with the paper's linear schedule (200 steps),
    minibatches with replacement, Adam with cosine decay, EMA weights; the returned weights are the
    EMA weights rounded to float16.  Bit-for-bit reproducible from ``seed`` (on one machine).

    Parameters
    ----------
    n_train : int >= 2
        N, the number of training models.
    seed : int >= 0
        Seeds the initialization and the minibatches.
    config : memprior.fwi.FWIConfig, optional
        Where the training models come from (grid, K, pool seed, sizes); default ``FWIConfig()``.
    hidden, depth, steps, lr, batch_size, ema_decay, n_freq : optional
        Training settings; ``None`` takes :data:`DEFAULTS`.
    device : str or torch.device, optional
        Where to train (default the CPU; e.g. ``"cuda"``).  The returned network is on the CPU.
    cache : bool
        Use the training cache of :func:`memprior.diffusion.train_denoiser` (``$MEMPRIOR_CACHE``).
    shipped : bool
        Look for shipped weights first.
    directory : path, optional
        Where the shipped weights are (default :func:`weights_dir`, the package folder).
    show_progress : bool
        A progress bar while training (silent in the built book).

    Returns
    -------
    TrainedPrior
        Kept in memory for the session: the same request returns the same object.
    """
    seed = check_seed(seed, "seed")
    n_train, seed, cfg, st, dev, folder = _request(n_train, seed, config, dict(
        hidden=hidden, depth=depth, steps=steps, lr=lr, batch_size=batch_size, ema_decay=ema_decay, n_freq=n_freq),
        device, directory)
    memo = (n_train, seed, cfg, tuple(sorted(st.items())), dev.type, str(folder) if shipped else None)
    if memo in _MEMO:
        return _MEMO[memo]
    ts, schedule, recipe, key, path = _resolve(n_train, seed, cfg, st, dev, folder)
    settings = {**st, **recipe}
    net = None
    if shipped and path.exists():
        net, meta = _load(path, ts.u, schedule, st, key)
        if net is not None:
            source, hist = "shipped", meta["history"]
            secs, cpu = float(meta["train_seconds"]), float(meta.get("train_cpu_seconds", float("nan")))
    if net is None:
        t0, c0 = time.perf_counter(), time.process_time()
        net = diffusion.train_denoiser(ts.u, schedule, steps=st["steps"], batch_size=st["batch_size"], lr=st["lr"],
                                       hidden=st["hidden"], depth=st["depth"], n_freq=st["n_freq"],
                                       ema_decay=st["ema_decay"], seed=seed, cache=cache,
                                       show_progress=show_progress, device=dev)
        source = "cache" if net.from_cache else "trained"
        secs, cpu = (time.perf_counter() - t0, time.process_time() - c0) if source == "trained" else \
            (float("nan"), float("nan"))
        hist = {"step": list(net.history["step"]), "loss": [float(v) for v in net.history["loss"]]}
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(p.to(torch.float16).to(p.dtype))
        net.snapshots = {}
    prior = TrainedPrior(denoiser=net, schedule=schedule, x_train=ts.u, z_train=ts.z, mu=ts.mu, s=ts.s, seed=seed,
                         settings=settings, key=key, source=source, train_seconds=secs,
                         train_cpu_seconds=cpu, history=hist)
    _MEMO[memo] = prior
    return prior


# ----------------------------------------------------------------------------- weight files
def save_prior(prior: TrainedPrior, directory) -> Path:
    """Write ``prior``'s weights (float16 parameters and a description) into ``directory``; returns the file.

    The file is written atomically, under the name :func:`weights_file` gives.
    """
    if not isinstance(prior, TrainedPrior):
        raise TypeError(f"prior: expected a TrainedPrior, got {type(prior).__name__}")
    st = {k: prior.settings[k] for k in _TRAIN_KEYS}
    path = weights_file(directory, prior.n_train, st, prior.seed, prior.key)
    params = {k: v.detach().to(torch.float16).clone() for k, v in prior.denoiser.named_parameters()}
    meta = dict(format=_FORMAT, key=prior.key, n_train=prior.n_train, dim=prior.dim, seed=prior.seed,
                settings=dict(prior.settings), train_seconds=float(prior.train_seconds),
                train_cpu_seconds=float(prior.train_cpu_seconds),
                history={"step": [int(v) for v in prior.history.get("step", [])],
                         "loss": [float(v) for v in prior.history.get("loss", [])]},
                torch=str(torch.__version__))
    diffusion.atomic_save({"meta": meta, "params": params}, path)
    os.chmod(path, 0o644)  # package data: readable by everyone
    return path


def _load(path: Path, u: torch.Tensor, schedule, st: dict, key: str):
    """The network stored in ``path``, or ``(None, None)`` if the file does not hold ``key``."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta, params = blob["meta"], blob["params"]
    except Exception:  # noqa: BLE001  (unreadable file: train instead)
        return None, None
    if meta.get("format") != _FORMAT or meta.get("key") != key:
        return None, None
    net = diffusion.MLPDenoiser(u.shape[1], schedule, st["hidden"], st["depth"], st["n_freq"], x_train=u)
    state = net.state_dict()
    names = {k for k, _ in net.named_parameters()}
    if set(params) != names:
        return None, None
    for k, v in params.items():
        state[k] = v.to(torch.float32)
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.history = meta["history"]
    net.from_cache = True
    net.snapshots = {}
    return net, meta


def shipped_specs(sizes=SIZES, widths=WIDTHS) -> list[dict]:
    """The networks the book uses: every ``n_train`` of ``sizes`` at every width of ``widths``.

    Returns a list of keyword dicts for :func:`train_prior` (``n_train``, ``hidden``), the
    default settings otherwise.
    """
    sizes = tuple(check_int("sizes", n, low=2) for n in sizes)
    widths = tuple(check_int("widths", w, low=1) for w in widths)
    return [dict(n_train=n, hidden=w) for w in widths for n in sizes]


def _write_one(spec: dict, directory: str) -> dict:
    torch.set_num_threads(1)
    prior = train_prior(**spec, shipped=True, directory=directory, cache=False, show_progress=False)
    path = save_prior(prior, directory) if prior.source != "shipped" else \
        weights_file(directory, prior.n_train, {k: prior.settings[k] for k in _TRAIN_KEYS}, prior.seed, prior.key)
    return dict(spec=spec, file=str(path), source=prior.source, train_seconds=prior.train_seconds,
                train_cpu_seconds=prior.train_cpu_seconds,
                bytes=path.stat().st_size)


def write_weights(directory=None, specs=None, *, jobs: int = 1, log=print) -> list[dict]:
    """Train every network of ``specs`` missing from ``directory`` and write its weight file.

    Parameters
    ----------
    directory : path, optional
        Default :func:`weights_dir` (the package folder).
    specs : list of dict, optional
        Keyword dicts for :func:`train_prior` (default :func:`shipped_specs`).
    jobs : int >= 1
        Networks trained at the same time, in separate processes, one thread each.
    log : callable
        Called with one line per network.

    Returns
    -------
    list of dict
        Per network: ``spec``, ``file``, ``source`` (``"shipped"`` when it was there already),
        ``train_seconds``, ``train_cpu_seconds`` (as recorded in the file) and ``bytes``.
    """
    directory = str(weights_dir() if directory is None else Path(directory))
    specs = shipped_specs() if specs is None else list(specs)
    jobs = check_int("jobs", jobs, low=1)
    for s in specs:
        if not isinstance(s, dict) or "n_train" not in s:
            raise TypeError(f"specs: each must be a dict of train_prior arguments with 'n_train', got {s!r}")
    specs = [dict(s) for s in specs]
    out = []
    if jobs == 1:
        for s in specs:
            out.append(_write_one(s, directory))
            log(_line(out[-1]))
        return out
    import concurrent.futures as cf
    import multiprocessing as mp
    worker = importlib.import_module("memprior.trained")._write_one   # picklable by name under `python -m`
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(worker, s, directory) for s in specs]
        for f in futs:
            out.append(f.result())
            log(_line(out[-1]))
    return out


def _line(r: dict) -> str:
    return (f"{r['source']:>8}  {r['train_seconds']:6.1f} s wall  {r['train_cpu_seconds']:6.1f} s CPU  "
            f"{r['bytes'] / 1e6:5.2f} MB  "
            f"{Path(r['file']).name}")


def main(argv=None) -> int:
    """``python -m memprior.trained --write [DIR] [--jobs J] [--sizes ...] [--widths ...] [settings]``."""
    ap = argparse.ArgumentParser(prog="python -m memprior.trained",
                                 description="Write the shipped weights of the trained FWI priors (trains what is "
                                             "missing).")
    ap.add_argument("--write", nargs="?", const="", metavar="DIR", required=True,
                    help="target folder (default: the package folder memprior/data/priors)")
    ap.add_argument("--jobs", type=positive_int, default=1, help="networks trained in parallel, one process each")
    ap.add_argument("--sizes", type=positive_int, nargs="+", default=list(SIZES), help="training-set sizes N")
    ap.add_argument("--widths", type=positive_int, nargs="*", default=list(WIDTHS), help="network widths")
    for k in ("steps", "batch_size", "n_freq"):
        ap.add_argument(f"--{k.replace('_', '-')}", type=positive_int, default=None, help=f"default {DEFAULTS[k]}")
    ap.add_argument("--depth", type=nonneg_int, default=None, help=f"default {DEFAULTS['depth']}")
    ap.add_argument("--lr", type=positive_float, default=None, help=f"default {DEFAULTS['lr']}")
    ap.add_argument("--ema-decay", type=unit_float, default=None, help=f"default {DEFAULTS['ema_decay']}")
    ap.add_argument("--seed", type=seed_int, default=0)
    a = ap.parse_args(argv)
    if a.write:
        check_output_dir(ap, "--write", a.write)
    return run_cli(ap, _main, a)


def _main(a) -> int:
    extra = {k: getattr(a, k) for k in ("depth", "steps", "batch_size", "n_freq", "lr", "ema_decay")
             if getattr(a, k) is not None}
    specs = [dict(s, seed=a.seed, **extra) for s in shipped_specs(a.sizes, a.widths or [DEFAULTS["hidden"]])]
    t0 = time.perf_counter()
    res = write_weights(a.write or None, specs, jobs=a.jobs)
    total = sum(r["bytes"] for r in res)
    trained = sum(r["source"] != "shipped" for r in res)
    print(f"{len(res)} networks ({trained} trained) in {time.perf_counter() - t0:.0f} s; {total / 1e6:.2f} MB in "
          f"{a.write or weights_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
