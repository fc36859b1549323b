r"""Exact results for the ferromagnetic 2D Ising model on a square lattice (J = 1, h = 0).

* Onsager (1944), infinite lattice: energy per spin
  $u = -\coth 2\beta \,[1 + \tfrac{2}{\pi}(2\tanh^2 2\beta - 1) K(k)]$ with
  $k = 2 \sinh 2\beta / \cosh^2 2\beta$ and $K$ the complete elliptic integral of the first kind;
  spontaneous magnetisation $M = (1 - \sinh^{-4} 2\beta)^{1/8}$ above
  $\beta_c = \tfrac12 \ln(1 + \sqrt 2)$, zero below.
* Kaufman (1949), finite periodic $m \times n$ lattice: the exact partition function
  $Z = \tfrac12 (2 \sinh 2\beta)^{mn/2} \sum_{a=1}^{4} Z_a$ with
  $Z_{1,2} = \prod_{r=0}^{n-1} 2\{\cosh,\sinh\}(\tfrac{m}{2}\gamma_{2r+1})$,
  $Z_{3,4} = \prod_{r=0}^{n-1} 2\{\cosh,\sinh\}(\tfrac{m}{2}\gamma_{2r})$,
  $\cosh \gamma_q = \cosh 2\beta \coth 2\beta - \cos(\pi q / n)$ and
  $\gamma_0 = 2\beta + \ln \tanh \beta$ (negative below the critical temperature).
  Energy and its variance follow by differentiating $\ln Z$; this is what a finite lattice
  sampled by a backend must reproduce, with no finite-size error.
"""

from __future__ import annotations

import numpy as np

CRITICAL_BETA = 0.5 * np.log(1.0 + np.sqrt(2.0))


def _elliptic_k(modulus: np.ndarray) -> np.ndarray:
    """Complete elliptic integral of the first kind, K(k) = pi / (2 AGM(1, sqrt(1 - k^2)))."""
    a = np.ones_like(modulus)
    b = np.sqrt(1.0 - modulus**2)
    for _ in range(40):
        a, b = (a + b) / 2, np.sqrt(a * b)
    return np.pi / (2 * a)


def onsager_energy(beta: float | np.ndarray) -> np.ndarray:
    """Energy per spin of the infinite lattice."""
    beta = np.asarray(beta, dtype=np.float64)
    two_beta = 2 * beta
    modulus = np.minimum(2 * np.sinh(two_beta) / np.cosh(two_beta) ** 2, 1 - 1e-16)
    bracket = 1 + (2 / np.pi) * (2 * np.tanh(two_beta) ** 2 - 1) * _elliptic_k(modulus)
    return -bracket / np.tanh(two_beta)


def onsager_magnetisation(beta: float | np.ndarray) -> np.ndarray:
    """Spontaneous magnetisation per spin of the infinite lattice."""
    beta = np.asarray(beta, dtype=np.float64)
    inside = np.clip(1 - np.sinh(2 * beta) ** -4.0, 0.0, None)
    return np.where(beta > CRITICAL_BETA, inside**0.125, 0.0)


def _signed_log_product(values: np.ndarray, kind: str) -> tuple[float, float]:
    """log|prod 2 f(x)| and its sign, for f = cosh or sinh, without overflow."""
    magnitude = np.abs(values)
    # log(2 cosh x) = |x| + log(1 + exp(-2|x|)); log(2 |sinh x|) = |x| + log(1 - exp(-2|x|))
    if kind == "cosh":
        return float(np.sum(magnitude + np.log1p(np.exp(-2 * magnitude)))), 1.0
    if np.any(values == 0):
        return -np.inf, 0.0
    logs = magnitude + np.log(-np.expm1(-2 * magnitude))
    return float(np.sum(logs)), float(np.prod(np.sign(values)))


def kaufman_log_partition(beta: float, rows: int, cols: int) -> float:
    """ln Z of the periodic rows x cols lattice (Kaufman 1949), exact for every size."""
    two_beta = 2 * beta
    q = np.arange(2 * cols)
    cosh_gamma = np.cosh(two_beta) / np.tanh(two_beta) - np.cos(np.pi * q / cols)
    gamma = np.arccosh(np.maximum(cosh_gamma, 1.0))
    gamma[0] = two_beta + np.log(np.tanh(beta))
    odd, even = gamma[1::2] * rows / 2, gamma[0::2] * rows / 2
    terms = [
        _signed_log_product(odd, "cosh"),
        _signed_log_product(odd, "sinh"),
        _signed_log_product(even, "cosh"),
        _signed_log_product(even, "sinh"),
    ]
    peak = max(log for log, sign in terms if sign != 0)
    total = sum(sign * np.exp(log - peak) for log, sign in terms if sign != 0)
    prefactor = 0.5 * rows * cols * np.log(2 * np.sinh(two_beta))
    return float(np.log(0.5) + prefactor + peak + np.log(total))


def kaufman_energy(beta: float, rows: int, cols: int | None = None) -> tuple[float, float]:
    """Exact mean energy per spin of the finite periodic lattice and the variance of the total
    energy, `(-d ln Z / d beta) / N` and `d^2 ln Z / d beta^2`, by fourth-order central
    differences (relative error near 1e-8)."""
    cols = rows if cols is None else cols
    step = 1e-3
    f = [kaufman_log_partition(beta + offset * step, rows, cols) for offset in (-2, -1, 0, 1, 2)]
    mean = -(f[0] - 8 * f[1] + 8 * f[3] - f[4]) / (12 * step)
    variance = (-f[0] + 16 * f[1] - 30 * f[2] + 16 * f[3] - f[4]) / (12 * step**2)
    return mean / (rows * cols), variance
