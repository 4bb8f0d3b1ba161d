"""Velocity-model families and the KL/cosine basis of the FWI experiments.

Units: velocity ``v`` in km/s, squared slowness ``m = 1/v**2`` in s^2/km^2,
lengths in km.  Arrays are ``[nx, nz]`` (x horizontal, z depth) with grid node
``(i, j)`` at ``(i*dx, j*dx)`` km, as in :mod:`memprior.wave`; a leading batch
dimension is allowed where stated.

The KL/cosine prior
-------------------
Siahkoohi & Sabeddu (2026) parametrize the squared slowness as

.. math::

    m(x) = \\bar m + \\sigma_m \\sum_i z_i \\lambda_i \\phi_i(x),
    \\quad \\phi_i(x) = 2\\cos(\\pi(i_1+\\tfrac12)x_1)\\cos(\\pi(i_2+\\tfrac12)x_2),
    \\quad \\lambda_i = \\bigl(\\pi^2((i_1+\\tfrac12)^2+(i_2+\\tfrac12)^2)\\bigr)^{-1.1/2},

on the unit square, with ``m_bar = 1/2.0**2`` and ``sigma_m = 0.02``.  The
``phi_i`` are the eigenfunctions of the Laplacian on [0, 1]^2 that are
even (Neumann) at 0 and vanish (Dirichlet) at 1; ``lambda_i`` is the matching
eigenvalue to the power -1.1/2.

*Index range.*  The paper lists ``i1, i2 in 1..10`` (so ``d = 100``): the
lowest, nearly constant mode ``i = 0`` is left out.  :class:`KLBasis` follows
the paper by default (``start=1``) and offers ``start=0`` for the full
low-frequency set.  The choice matters for localized anomalies: on a 32^2 grid
the least-squares projection of a centred Gaussian lens (width 15 % of the side)
misses about 84 % of its perturbation with ``start=1`` and well under 1 % with
``start=0`` (chapter 7, first exercise).  Every ``phi_i`` vanishes at
``x1 = 1`` and ``x2 = 1``, so all models of the prior return to ``m_bar`` along
the right and bottom edges.

*Discretization.*  The unit-square coordinate of node ``(i, j)`` is the cell
centre ``x1 = (i + 1/2)/nx``, ``x2 = (j + 1/2)/nz``.  With this choice the
sampled cosines are the DCT-IV vectors, which are *exactly* orthonormal on the
grid in the mean inner product ``<f, g> = mean(f * g)`` as long as every index
is below the grid size.  Least-squares projection is then exact for any model
in the span.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ._checks import as_tensor, check_int, check_positive

__all__ = [
    "v_to_m", "m_to_v", "gaussian_lens", "layered", "faulted", "grf", "rescale", "KLBasis",
    "M_BAR", "SIGMA_M",
]

#: Background squared slowness of the paper's prior, 1/(2 km/s)^2, in s^2/km^2.
M_BAR = 0.25
#: Amplitude of the KL perturbation in the paper's prior, in s^2/km^2.
SIGMA_M = 0.02


def _positive_field(name: str, x) -> torch.Tensor:
    t = as_tensor(name, x)
    if not bool((t > 0).all()):
        raise ValueError(f"{name}: every entry must be > 0 (got minimum {float(t.min()):.4g})")
    return t


def v_to_m(v) -> torch.Tensor:
    """Squared slowness ``m = 1/v**2`` (s^2/km^2) from velocity ``v`` (km/s).

    Parameters
    ----------
    v : array-like or Tensor, any shape
        Velocities in km/s; every entry must be finite and > 0.

    Returns
    -------
    Tensor of the same shape (float64 unless ``v`` is a float tensor).
    """
    v = _positive_field("v", v)
    return 1.0 / v ** 2


def m_to_v(m) -> torch.Tensor:
    """Velocity ``v = 1/sqrt(m)`` (km/s) from squared slowness ``m`` (s^2/km^2).

    Parameters
    ----------
    m : array-like or Tensor, any shape
        Squared slowness; every entry must be finite and > 0.
    """
    m = _positive_field("m", m)
    return 1.0 / torch.sqrt(m)


def _grid(nx: int, nz: int, dx: float):
    nx = check_int("nx", nx, low=2)
    nz = check_int("nz", nz, low=2)
    dx = check_positive("dx", dx)
    x = torch.arange(nx, dtype=torch.float64) * dx
    z = torch.arange(nz, dtype=torch.float64) * dx
    X, Z = torch.meshgrid(x, z, indexing="ij")
    return nx, nz, dx, X, Z


def gaussian_lens(nx: int, nz: int, dx: float, v0: float = 2.0, dv: float = -0.4,
                  center: Sequence[float] | None = None, width: float | None = None) -> torch.Tensor:
    """A Gaussian velocity lens ``v = v0 + dv * exp(-|x - c|^2 / (2 width^2))``.

    Parameters
    ----------
    nx, nz : int >= 2
        Grid size.
    dx : float > 0
        Grid spacing in km.
    v0 : float > 0
        Background velocity in km/s.
    dv : float
        Velocity anomaly at the centre in km/s (negative: a slow lens); ``v0 + dv`` must be > 0.
    center : (float, float), optional
        Centre ``(x, z)`` in km; default the middle of the grid.
    width : float > 0 or (float, float), optional
        Standard deviation of the Gaussian in km, or a pair ``(sigma_x, sigma_z)`` for an elliptical
        lens; default 15 % of the smaller extent.

    Returns
    -------
    Tensor [nx, nz], float64, km/s.
    """
    nx, nz, dx, X, Z = _grid(nx, nz, dx)
    v0 = check_positive("v0", v0)
    if isinstance(dv, bool) or not isinstance(dv, (int, float, np.floating, np.integer)) or not math.isfinite(dv):
        raise TypeError(f"dv: expected a finite real number in km/s, got {dv!r}")
    if v0 + dv <= 0:
        raise ValueError(f"dv: v0 + dv must be > 0 km/s (got v0={v0}, dv={dv})")
    ext_x, ext_z = (nx - 1) * dx, (nz - 1) * dx
    if center is None:
        cx, cz = ext_x / 2, ext_z / 2
    else:
        if len(center) != 2:
            raise ValueError(f"center: expected (x, z) in km, got {center!r}")
        cx, cz = float(center[0]), float(center[1])
        if not (0 <= cx <= ext_x and 0 <= cz <= ext_z):
            raise ValueError(f"center: must lie in [0, {ext_x:.4g}] x [0, {ext_z:.4g}] km, got {center!r}")
    if width is None:
        wx = wz = 0.15 * min(ext_x, ext_z)
    elif isinstance(width, (tuple, list)):
        if len(width) != 2:
            raise ValueError(f"width: expected a width or (sigma_x, sigma_z) in km, got {width!r}")
        wx, wz = check_positive("width", width[0]), check_positive("width", width[1])
    else:
        wx = wz = check_positive("width", width)
    if wx == wz:                                  # round: the same expression as before the elliptical option
        return v0 + dv * torch.exp(-((X - cx) ** 2 + (Z - cz) ** 2) / (2 * wx ** 2))
    return v0 + dv * torch.exp(-(((X - cx) / wx) ** 2 + ((Z - cz) / wz) ** 2) / 2)


def _check_layers(velocities, depths):
    vel = [check_positive(f"velocities[{k}]", v) for k, v in enumerate(velocities)]
    if len(vel) < 1:
        raise ValueError("velocities: need at least one layer velocity (km/s)")
    dep = [float(d) for d in depths]
    if len(dep) != len(vel) - 1:
        raise ValueError(f"depths: need len(velocities) - 1 = {len(vel) - 1} interface depths, got {len(dep)}")
    if any(not math.isfinite(d) for d in dep) or any(b <= a for a, b in zip(dep, dep[1:])):
        raise ValueError(f"depths: must be finite and strictly increasing (km), got {dep}")
    return vel, dep


def layered(nx: int, nz: int, dx: float, velocities: Sequence[float], depths: Sequence[float]) -> torch.Tensor:
    """A horizontally layered velocity model.

    Parameters
    ----------
    nx, nz, dx : grid size and spacing (km)
    velocities : sequence of float > 0, length L
        Layer velocities in km/s, from the top down.
    depths : sequence of float, length L - 1
        Strictly increasing interface depths in km.  A node at depth ``z`` belongs
        to layer ``k`` when ``depths[k-1] <= z < depths[k]``.

    Returns
    -------
    Tensor [nx, nz], float64, km/s.
    """
    nx, nz, dx, X, Z = _grid(nx, nz, dx)
    vel, dep = _check_layers(velocities, depths)
    idx = torch.bucketize(Z.contiguous(), torch.tensor(dep, dtype=torch.float64), right=True)
    return torch.tensor(vel, dtype=torch.float64)[idx]


def faulted(nx: int, nz: int, dx: float, velocities: Sequence[float] = (1.8, 2.3, 2.8),
            depths: Sequence[float] = (0.6, 1.2), throw: float = 0.25, fault_x: float | None = None,
            dip: float = 60.0) -> torch.Tensor:
    """A layered model cut by a planar normal fault.

    The fault plane passes through ``(fault_x, 0)`` and dips at ``dip`` degrees
    from the horizontal towards +x.  On the hanging-wall side (to the right of
    the plane) every interface is shifted down by ``throw`` km.

    Parameters
    ----------
    nx, nz, dx : grid size and spacing (km)
    velocities, depths : as in :func:`layered`
    throw : float >= 0
        Vertical offset in km.
    fault_x : float, optional
        Surface position of the fault in km; default the middle of the grid.
    dip : float in (0, 90]
        Dip angle in degrees (90 = vertical fault).

    Returns
    -------
    Tensor [nx, nz], float64, km/s.
    """
    nx, nz, dx, X, Z = _grid(nx, nz, dx)
    vel, dep = _check_layers(velocities, depths)
    if isinstance(throw, bool) or not isinstance(throw, (int, float, np.floating, np.integer)) \
            or not math.isfinite(throw) or throw < 0:
        raise ValueError(f"throw: must be a finite number >= 0 km, got {throw!r}")
    dip = check_positive("dip", dip, upper=90.0)
    ext_x = (nx - 1) * dx
    fx = ext_x / 2 if fault_x is None else float(fault_x)
    if not 0 <= fx <= ext_x:
        raise ValueError(f"fault_x: must lie in [0, {ext_x:.4g}] km, got {fault_x!r}")
    cot = 0.0 if dip == 90.0 else 1.0 / math.tan(math.radians(dip))
    hanging = X > fx + Z * cot
    zz = torch.where(hanging, Z - float(throw), Z)
    idx = torch.bucketize(zz.contiguous(), torch.tensor(dep, dtype=torch.float64), right=True)
    return torch.tensor(vel, dtype=torch.float64)[idx]


def grf_amplitude(nx: int, nz: int, alpha: float = 3.0, tau: float = 5.0) -> torch.Tensor:
    """Standard deviation of each Fourier mode of :func:`grf`, ``(4 pi^2 |k|^2 + tau^2)^(-alpha/2)``.

    ``k = (k1, k2)`` are integer wavenumbers on the unit torus (``numpy.fft.fftfreq(n) * n``);
    the mean mode ``k = 0`` is set to 0.  Returns a Tensor [nx, nz], float64.
    """
    nx = check_int("nx", nx, low=2)
    nz = check_int("nz", nz, low=2)
    alpha = check_positive("alpha", alpha)
    tau = check_positive("tau", tau)
    k1 = torch.fft.fftfreq(nx, dtype=torch.float64) * nx
    k2 = torch.fft.fftfreq(nz, dtype=torch.float64) * nz
    K1, K2 = torch.meshgrid(k1, k2, indexing="ij")
    amp = (4 * math.pi ** 2 * (K1 ** 2 + K2 ** 2) + tau ** 2) ** (-alpha / 2)
    amp[0, 0] = 0.0
    return amp


def grf(n: int, nx: int, nz: int, alpha: float = 3.0, tau: float = 5.0,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Periodic Gaussian random fields on the unit torus.

    The fields are stationary and periodic, with covariance operator
    ``(-Laplacian + tau^2)^(-alpha)``: each Fourier mode ``k`` has standard
    deviation proportional to ``(4 pi^2 |k|^2 + tau^2)^(-alpha/2)`` and the mean
    (``k = 0``) mode is zero.  White noise is filtered in Fourier space, so the
    fields are exactly real and the spectrum is exact on the discrete torus.

    Parameters
    ----------
    n : int >= 1
        Number of fields.
    nx, nz : int >= 2
        Grid size (the unit square sampled at ``nx`` x ``nz`` points, periodic).
    alpha : float > 0
        Smoothness exponent (paper: 3).
    tau : float > 0
        Inverse length scale (paper: 5).
    generator : torch.Generator, optional
        Random source, for reproducibility.

    Returns
    -------
    Tensor [n, nx, nz], float64, dimensionless, scaled so that the pointwise
    variance is 1.
    """
    n = check_int("n", n, low=1)
    amp = grf_amplitude(nx, nz, alpha, tau)
    need = 48 * n * amp.numel()  # the white noise, its complex FFT and the field, in bytes
    if need > 8 * 2 ** 30:
        raise ValueError(f"n: {n} fields of {nx} x {nz} would need about {need / 2 ** 30:.0f} GiB at once (more "
                         "than 8 GiB); draw them in batches")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    w = torch.randn(n, amp.shape[0], amp.shape[1], dtype=torch.float64, generator=generator)
    f = torch.fft.ifft2(torch.fft.fft2(w) * amp).real
    # pointwise variance of the filtered field is mean(amp^2); normalize it to 1
    return f / torch.sqrt((amp ** 2).mean())


def rescale(fields, vmin: float = 1.5, vmax: float = 3.0) -> torch.Tensor:
    """Affinely map each field onto ``[vmin, vmax]`` (its minimum to vmin, maximum to vmax).

    Parameters
    ----------
    fields : Tensor [..., nx, nz]
        One field or a batch; each ``[nx, nz]`` slice is rescaled on its own.
    vmin, vmax : float, 0 < vmin < vmax
        Target range (km/s for velocities).

    Returns
    -------
    Tensor of the same shape.  A constant field maps to ``(vmin + vmax)/2``.
    """
    f = as_tensor("fields", fields)
    if f.dim() < 2:
        raise ValueError(f"fields: expected shape [..., nx, nz], got {list(f.shape)}")
    vmin = check_positive("vmin", vmin)
    vmax = check_positive("vmax", vmax)
    if vmax <= vmin:
        raise ValueError(f"vmax: must be > vmin = {vmin}, got {vmax}")
    lo = f.amin(dim=(-2, -1), keepdim=True)
    hi = f.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    safe = torch.where(span > 0, span, torch.ones_like(span))
    unit = torch.where(span > 0, (f - lo) / safe, torch.full_like(f, 0.5))
    return vmin + (vmax - vmin) * unit


class KLBasis:
    """The paper's cosine (Karhunen-Loeve-type) basis for squared slowness.

    Parameters
    ----------
    nx, nz : int
        Grid size; need ``start + K <= min(nx, nz)`` so that the sampled modes stay
        orthogonal (no aliasing).
    K : int >= 1
        Modes per direction; ``d = K**2`` coefficients (paper: K = 10, d = 100).
    decay : float > 0
        Exponent in ``lambda_i = (pi^2 |i + 1/2|^2)^(-decay/2)`` (paper: 1.1).
    start : int in {0, 1}
        First index ``i1, i2 = start .. start + K - 1``.  The paper uses 1 (the
        constant-like mode ``i = 0`` is left out); 0 keeps it.

    Attributes
    ----------
    phi : Tensor [d, nx, nz]
        Basis functions on the grid; ``mean(phi[a] * phi[b]) = delta_ab`` exactly.
    lam : Tensor [d]
        Weights ``lambda_i``.
    index : Tensor [d, 2] (long)
        ``(i1, i2)`` of each coefficient; coefficient ``a = (i1 - start) * K + (i2 - start)``.
    nx, nz, K, d, decay, start
    """

    def __init__(self, nx: int, nz: int, K: int = 10, decay: float = 1.1, start: int = 1):
        self.nx = check_int("nx", nx, low=2)
        self.nz = check_int("nz", nz, low=2)
        self.K = check_int("K", K, low=1)
        self.decay = check_positive("decay", decay)
        self.start = check_int("start", start, low=0, high=1)
        if self.start + self.K > min(self.nx, self.nz):
            raise ValueError(
                f"K: the grid {self.nx}x{self.nz} resolves at most {min(self.nx, self.nz) - self.start} modes per "
                f"direction with start={self.start}; got K={self.K} (basis/grid mismatch)")
        self.d = self.K ** 2
        i = torch.arange(self.start, self.start + self.K, dtype=torch.float64)
        x1 = (torch.arange(self.nx, dtype=torch.float64) + 0.5) / self.nx
        x2 = (torch.arange(self.nz, dtype=torch.float64) + 0.5) / self.nz
        c1 = torch.cos(math.pi * (i[:, None] + 0.5) * x1[None, :])  # [K, nx]
        c2 = torch.cos(math.pi * (i[:, None] + 0.5) * x2[None, :])  # [K, nz]
        self.phi = (2.0 * c1[:, None, :, None] * c2[None, :, None, :]).reshape(self.d, self.nx, self.nz)
        I1, I2 = torch.meshgrid(i, i, indexing="ij")
        self.lam = (math.pi ** 2 * ((I1 + 0.5) ** 2 + (I2 + 0.5) ** 2)).reshape(-1) ** (-self.decay / 2)
        self.index = torch.stack([I1.reshape(-1), I2.reshape(-1)], dim=1).long()
        self._flat = self.phi.reshape(self.d, -1)  # [d, P]
        self._gram = self._flat @ self._flat.T  # [d, d], = P * I in exact arithmetic

    def __repr__(self) -> str:
        return f"KLBasis(nx={self.nx}, nz={self.nz}, K={self.K}, decay={self.decay}, start={self.start})"

    def _check_z(self, z) -> tuple[torch.Tensor, bool]:
        z = as_tensor("z", z)
        if z.dim() not in (1, 2) or z.shape[-1] != self.d:
            raise ValueError(f"z: expected shape [{self.d}] or [B, {self.d}] (d = K^2), got {list(z.shape)}")
        return (z[None] if z.dim() == 1 else z), z.dim() == 1

    def _check_m(self, m) -> tuple[torch.Tensor, bool]:
        m = as_tensor("m", m)
        if m.dim() not in (2, 3) or tuple(m.shape[-2:]) != (self.nx, self.nz):
            raise ValueError(f"m: expected shape [{self.nx}, {self.nz}] or [B, {self.nx}, {self.nz}] to match "
                             f"the basis grid, got {list(m.shape)} (basis/grid mismatch)")
        return (m[None] if m.dim() == 2 else m), m.dim() == 2

    def dm_dz(self, sigma_m: float = SIGMA_M) -> torch.Tensor:
        """Columns of the linear map z -> m: ``sigma_m * lam[a] * phi[a]``, Tensor [d, nx, nz] (s^2/km^2).

        This is the ``basis`` argument of :meth:`memprior.wave.Helmholtz2D.jacobian`.
        """
        sigma_m = check_positive("sigma_m", sigma_m)
        return sigma_m * self.lam[:, None, None] * self.phi

    def coeffs_to_m(self, z, m_bar: float = M_BAR, sigma_m: float = SIGMA_M) -> torch.Tensor:
        """Squared slowness ``m = m_bar + sigma_m * sum_a z_a lam_a phi_a``.

        Parameters
        ----------
        z : Tensor [d] or [B, d]
            KL coefficients.
        m_bar : float > 0
            Background squared slowness in s^2/km^2 (paper: 1/2.0^2 = 0.25).
        sigma_m : float > 0
            Perturbation amplitude in s^2/km^2 (paper: 0.02).

        Returns
        -------
        Tensor [nx, nz] or [B, nx, nz] in s^2/km^2 (not clipped: may be <= 0 for huge z).
        """
        zb, single = self._check_z(z)
        m_bar = check_positive("m_bar", m_bar)
        sigma_m = check_positive("sigma_m", sigma_m)
        w = (zb * self.lam.to(zb.dtype)) @ self._flat.to(zb.dtype)
        m = m_bar + sigma_m * w.reshape(-1, self.nx, self.nz)
        return m[0] if single else m

    def reconstruct(self, z, m_bar: float = M_BAR, sigma_m: float = SIGMA_M) -> torch.Tensor:
        """Same as :meth:`coeffs_to_m`: the model ``m`` of coefficients ``z``."""
        return self.coeffs_to_m(z, m_bar=m_bar, sigma_m=sigma_m)

    def project(self, m, m_bar: float = M_BAR, sigma_m: float = SIGMA_M) -> torch.Tensor:
        """Least-squares coefficients ``z = argmin ||coeffs_to_m(z) - m||^2``.

        Parameters
        ----------
        m : Tensor [nx, nz] or [B, nx, nz]
            Squared slowness in s^2/km^2, on the basis grid.
        m_bar, sigma_m : as in :meth:`coeffs_to_m`

        Returns
        -------
        Tensor [d] or [B, d].
        """
        mb, single = self._check_m(m)
        m_bar = check_positive("m_bar", m_bar)
        sigma_m = check_positive("sigma_m", sigma_m)
        r = (mb - m_bar).reshape(mb.shape[0], -1).to(torch.float64)
        c = torch.linalg.solve(self._gram, self._flat @ r.T).T  # [B, d] coefficients of phi
        z = (c / (sigma_m * self.lam)).to(mb.dtype)
        return z[0] if single else z
