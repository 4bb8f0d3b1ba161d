"""What the chapters compute, sweep and tabulate.

One module per chapter that needs one. Each exposes functions that take the experiment's parameters
(defaults: the chapter's settings) and return a frozen dataclass of results: arrays, scalars and the
inputs they were computed from. The chapters call these functions, show their figures (built by
:mod:`memprior.plots`) and quote their fields in the prose with ``{eval}`` roles; the tests check the same
fields against independent references.

=================  ==========  ===================================================================
module             chapter     what it computes
=================  ==========  ===================================================================
``memorize``       1           maximum-likelihood fits of kernel densities: train/held-out curves
``lookup``         2           lookup weights, their limits in the noise level and in the bandwidth
``stylized``       3           exact, linearized and lookup posteriors of the 1-D and 2-D problems
``denoising``      4           memorized and trained denoisers, commitment, metrics against a null
``sampling``       5           DPS, the paper's variant, exact reweighting and SMC on the toy problem
``wave``           6           the Helmholtz solver's verification, data, gradients, a short FWI
``fwi``            7           DPS for FWI with memorized priors against the exact lookup
``practice``       8           detecting and mitigating memorization, and what to report
=================  ==========  ===================================================================

The numerics these build on live in the topic modules (:mod:`memprior.posterior`,
:mod:`memprior.diffusion`, ...); nothing here imports :mod:`memprior.plots` or :mod:`memprior.widgets`.
"""
