"""Geometry of an embedding under input transformations: is g a linear, orthogonal map there?

CARE (Gupta et al., ICLR 2024) trains an encoder so that each transformation g acts on the
embedding as an orthogonal matrix: f(g x) ~= A f(x). These diagnostics measure that directly.
A least-squares A is fitted on half of the held-out images and scored on the other half
(equivariance error); how far A is from orthogonal, whether A^k = I for the element's order k
(C4 rotation: A^4 = I), and the plain invariance cos(f(x), f(g x)) complete the picture. A hue
sweep measures CARE's colour-sensitivity claim: an invariant encoder gives cos ~1 at every shift.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from equissl.augment.color import adjust_hue
from equissl.augment.stats import to_float
from equissl.errors import UserError
from equissl.eval.equivariance import invariance_score
from equissl.transforms import Transformation, get_transformation
from equissl.warn import warn

__all__ = [
    "element_order",
    "equivariance_error",
    "fit_linear_map",
    "geometry_metrics",
    "hue_sensitivity",
    "orthogonality_error",
    "power_error",
]

Encoder = Callable[[Tensor], Tensor]


RCOND = 1e-3  # singular values of x below this fraction of the largest count as zero


def fit_linear_map(x: Tensor, y: Tensor, rcond: float = RCOND) -> Tensor:
    """The minimum-norm least-squares A (d_out, d_in), float64 on the CPU, minimising
    ||y - x A^T||_F for x (N, d_in) and y (N, d_out). Directions of x whose singular value is
    below `rcond` x the largest are treated as absent (numerical rank): with few images or a
    nearly collapsed embedding, fitting them would give A huge entries fitted to noise."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise UserError(
            "fit_linear_map needs x (N, d_in) and y (N, d_out) with the same N > 0, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    x = x.detach().to("cpu", torch.float64)
    y = y.detach().to("cpu", torch.float64)
    return torch.linalg.lstsq(x, y, rcond=rcond, driver="gelsd").solution.T.contiguous()


def procrustes_map(x: Tensor, y: Tensor) -> Tensor:
    """The orthogonal Q (d, d), float64 on the CPU, minimising ||y - x Q^T||_F (orthogonal
    Procrustes: Q = V U^T from the SVD of x^T y = U S V^T)."""
    x = x.detach().to("cpu", torch.float64)
    y = y.detach().to("cpu", torch.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise UserError(f"procrustes_map needs x and y of one (N, d) shape, got {tuple(x.shape)}")
    u, _, vh = torch.linalg.svd(x.T @ y)
    return (u @ vh).T


def equivariance_error(x: Tensor, y: Tensor, a: Tensor) -> float:
    """Relative residual ||y - x A^T||_F / ||y||_F in float64 (0 when y and the residual are 0)."""
    x, y, a = (t.detach().to("cpu", torch.float64) for t in (x, y, a))
    residual = torch.linalg.matrix_norm(y - x @ a.T).item()
    norm = torch.linalg.matrix_norm(y).item()
    if norm == 0:
        return 0.0 if residual == 0 else math.inf
    return residual / norm


def _identity_gap(m: Tensor) -> float:
    d = m.shape[0]
    return (torch.linalg.matrix_norm(m - torch.eye(d, dtype=m.dtype)) / math.sqrt(d)).item()


def _square(a: Tensor, what: str) -> Tensor:
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise UserError(f"{what} needs a non-empty square matrix, got {tuple(a.shape)}")
    return a.detach().to("cpu", torch.float64)


def orthogonality_error(a: Tensor) -> float:
    """||A^T A - I||_F / sqrt(d) for a square (d, d) A: 0 for an orthogonal matrix."""
    a = _square(a, "orthogonality_error")
    return _identity_gap(a.T @ a)


def power_error(a: Tensor, k: int) -> float:
    """||A^k - I||_F / sqrt(d) for a square (d, d) A: 0 when A has order dividing k."""
    return _identity_gap(torch.linalg.matrix_power(_square(a, "power_error"), k))


def element_order(
    t: Transformation, label: int = 1, size: int = 8, channels: int = 3, *, seed: int = 0
) -> int | None:
    """The smallest k <= t.num_labels with g^k x == x (atol 1e-6) for g = element `label` and a
    random probe image x (1, channels, size, size) in [0, 1]; None when there is none (grayscale,
    blur). `size` and `channels` must be those `t` was built for."""
    if not 0 <= label < t.num_labels:
        raise UserError(f"{t.name!r} has labels 0..{t.num_labels - 1}, got {label}")
    gen = torch.Generator().manual_seed(seed)
    probe = torch.rand(1, channels, size, size, generator=gen)
    labels = torch.full((1,), label, dtype=torch.long)
    x = probe
    for k in range(1, t.num_labels + 1):
        x = t.apply(x, labels)
        if torch.allclose(x, probe, rtol=0, atol=1e-6):
            return k
    return None


def _check(images: Tensor, batch_size: int, limit: int | None, encoders: dict) -> Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
        raise UserError(
            f"images must be a non-empty uint8 (N,C,H,W) tensor, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if not encoders:
        raise UserError("no encoders given")
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1 or None, got {limit}")
    return images if limit is None else images[:limit]


def _batches(images: Tensor, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    for start in range(0, images.shape[0], batch_size):
        yield to_float(images[start : start + batch_size].to(device))


def _features(encode: Encoder, x: Tensor) -> Tensor:
    return encode(x).detach().reshape(x.shape[0], -1).to("cpu", torch.float64)


@torch.no_grad()
def _encode(
    encoders: dict[str, Encoder],
    images: Tensor,
    batch_size: int,
    device: torch.device,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Every space's features (N, D), CPU float64, of the (optionally transformed) images."""
    chunks: dict[str, list[Tensor]] = {space: [] for space in encoders}
    for x in _batches(images, batch_size, device):
        if transform is not None:
            x = transform(x)
        for space, encode in encoders.items():
            chunks[space].append(_features(encode, x))
    return {space: torch.cat(parts) for space, parts in chunks.items()}


def geometry_metrics(
    encoders: dict[str, Encoder],
    images: Tensor,
    names: Sequence[str],
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    limit: int | None = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """Per space (key of `encoders`) and transformation `name`, for g = element 1 (the generator,
    e.g. the 90-degree rotation): `<space>_<name>_equiv_err`, `_orth_err`, `_pow<k>_err` (k the
    order of g, left out when g has none), `_procrustes_err` (the held-out error of the best
    orthogonal map instead of the least-squares one: close to `_equiv_err` when g acts
    orthogonally), `_procrustes_pow<k>_err` (||Q^k - I|| for that orthogonal map: does it
    compose like the group?) and `_inv_cos`.

    `images` are uint8 (N, C, H, W) and square; the first `limit` are used. Each encoder maps
    float views in [0, 1] on `device` (the caller normalises and sets eval mode; no autocast is
    applied here) to (N, D) features, run under no_grad `batch_size` images at a time.
    A = fit_linear_map(f(x), f(g x)) on the first half of the images; the equivariance error is
    measured on the second half, the invariance (mean cosine of f(x) and f(g x)) on all images.
    `seed` seeds the probe image of `element_order`.
    """
    images = _check(images, batch_size, limit, encoders)
    names = list(names)
    if len(set(names)) != len(names):
        raise UserError(f"transformation names repeat: {names}")
    n, channels, size, width = images.shape
    if size != width:
        raise UserError(f"images must be square, got {size}x{width}")
    if n < 2:
        raise UserError(f"geometry_metrics needs at least 2 images (fit and test), got {n}")
    device = torch.device(device)
    half = n // 2
    plain = _encode(encoders, images, batch_size, device)
    widest = max(f.shape[1] for f in plain.values())
    if half < widest:
        warn(
            f"geometry maps of {widest} features fitted on {half} images are underdetermined: "
            f"their errors mean little; use at least {2 * widest} images (eval.geometry_limit)"
        )
    results: dict[str, float] = {}
    for name in names:
        t = get_transformation(name, size, channels)
        if t.num_labels < 2:
            raise UserError(f"transformation {t.name!r} has {t.num_labels} element(s), need 2+")
        order = element_order(t, 1, size=size, channels=channels, seed=seed)

        def generator(x: Tensor, t: Transformation = t) -> Tensor:
            return t.apply(x, torch.ones(x.shape[0], dtype=torch.long, device=x.device))

        moved = _encode(encoders, images, batch_size, device, transform=generator)
        for space in encoders:
            fx, fgx = plain[space], moved[space]
            a = fit_linear_map(fx[:half], fgx[:half])
            key = f"{space}_{name}"
            results[f"{key}_equiv_err"] = equivariance_error(fx[half:], fgx[half:], a)
            results[f"{key}_orth_err"] = orthogonality_error(a)
            if fx.shape[1] == fgx.shape[1]:
                q = procrustes_map(fx[:half], fgx[:half])
                results[f"{key}_procrustes_err"] = equivariance_error(fx[half:], fgx[half:], q)
                if order is not None:
                    results[f"{key}_procrustes_pow{order}_err"] = power_error(q, order)
            if order is not None:
                results[f"{key}_pow{order}_err"] = power_error(a, order)
            results[f"{key}_inv_cos"] = invariance_score(fx, fgx)
    return results


def hue_sensitivity(
    encoders: dict[str, Encoder],
    images: Tensor,
    degrees: Sequence[float] = tuple(range(0, 181, 15)),
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    limit: int | None = 2000,
) -> dict[str, list[float]]:
    """`{"degrees": [...], space: [mean cos(f(x), f(hue(x, deg))) per degree], ...}`.

    `images` are uint8 RGB (N, 3, H, W), the first `limit` used; each hue shift (degrees in
    [-180, 180], applied with `adjust_hue` as deg / 360 turns) is encoded `batch_size` images at
    a time under no_grad on `device`. An encoder invariant to hue gives ~1 at every shift.
    """
    images = _check(images, batch_size, limit, encoders)
    if images.shape[1] != 3:
        raise UserError(f"hue_sensitivity needs RGB images (3 channels), got {images.shape[1]}")
    if "degrees" in encoders:
        raise UserError("'degrees' is reserved in hue_sensitivity's result: rename that space")
    if bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()):
        warn(
            "hue sensitivity of grayscale images is 1 at every shift by construction: it says "
            "nothing about the encoder"
        )
    degrees = [float(d) for d in degrees]
    if not degrees or any(not -180 <= d <= 180 for d in degrees):
        raise UserError(f"hue shifts must be a non-empty list within [-180, 180], got {degrees}")
    device = torch.device(device)
    sums = {space: torch.zeros(len(degrees), dtype=torch.float64) for space in encoders}
    with torch.no_grad():
        for x in _batches(images, batch_size, device):
            plain = {space: _features(encode, x) for space, encode in encoders.items()}
            for i, deg in enumerate(degrees):
                shifted = adjust_hue(x, deg / 360)
                for space, encode in encoders.items():
                    cos = F.cosine_similarity(plain[space], _features(encode, shifted), eps=1e-12)
                    sums[space][i] += cos.sum()
    curves: dict[str, list[float]] = {"degrees": degrees}
    for space, total in sums.items():
        curves[space] = (total / images.shape[0]).tolist()
    return curves
