#!/usr/bin/python3
"""Fits the float erf of native/cpu/vec_erf.h and prints its coefficients.

|x| < 1: erf(x) = x * P(x^2), P of degree 6, least squares in relative error.
1 <= |x| < 4: erf(x) = 1 - exp(-x^2) * R(|x| - 2.5), R of degree 11, least squares in
relative error of erfc(x) exp(x^2). Points are Chebyshev-spaced; the script also reports
the worst error of the float32 evaluation (Horner, as the C++ does). Needs numpy.
"""

import math

import numpy as np

f32 = np.float32
erf = np.vectorize(math.erf)
erfc = np.vectorize(math.erfc)


def horner(coeffs, t):
    r = f32(coeffs[0])
    for c in coeffs[1:]:
        r = f32(r * t + f32(c))
    return r


def chebyshev_points(low, high, count=4000):
    return np.cos(np.linspace(0, np.pi, count)) * (high - low) / 2 + (high + low) / 2


def fit_small():
    x = chebyshev_points(0, 1)
    target = np.where(x > 0, erf(x) / np.where(x > 0, x, 1), 2 / math.sqrt(math.pi))
    design = np.vander(x * x, 7)
    coeffs, *_ = np.linalg.lstsq(design / target[:, None], np.ones_like(target), rcond=None)
    xs = np.linspace(1e-6, 1, 2001).astype(np.float32)
    got = np.array([f32(v) * horner(coeffs.astype(np.float32), f32(v) * f32(v)) for v in xs])
    worst = np.max(np.abs(got - erf(xs.astype(np.float64))) / erf(xs.astype(np.float64)))
    return coeffs, worst


def fit_mid():
    x = chebyshev_points(1, 4)
    target = erfc(x) * np.exp(x * x)
    design = np.vander(x - 2.5, 12)
    coeffs, *_ = np.linalg.lstsq(design / target[:, None], np.ones_like(target), rcond=None)
    xs = np.linspace(1, 4, 3001).astype(np.float32)
    got = []
    for v in xs:
        r = horner(coeffs.astype(np.float32), f32(v - f32(2.5)))
        e = f32(np.exp(-np.float64(f32(v) * f32(v))))
        got.append(f32(f32(1) - f32(e * r)))
    worst = np.max(np.abs(np.array(got, dtype=np.float64) - erf(xs.astype(np.float64))))
    return coeffs, worst


if __name__ == "__main__":
    for name, (coeffs, worst) in (("P", fit_small()), ("R", fit_mid())):
        print(name, ", ".join("%.9ef" % float(f32(c)) for c in coeffs), "worst error", worst)
