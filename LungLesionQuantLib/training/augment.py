"""Batched augmentation on torch tensors: cheap enough for CPU training, and run on the GPU's
tensors when training there (the random draws stay on the CPU generator, so a seed gives the
same augmentations on either device).

Geometry: any of the 8 flips/transposes (the published slices come in mixed orientations),
rotation, zoom and shift. Intensity: lung-window jitter and a wide gamma range (the true
window of the 8-bit slices is unknown: the aerated lung of the 50 GGO/Cons slices sits at
unit 0.10-0.43, median 0.17, against 0.22-0.31 on real CTs), and Gaussian noise standing in
for low-dose noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    zoom: tuple[float, float] = (0.85, 1.2)
    rotate_deg: float = 15.0
    shift: float = 0.08
    window_shift: float = 0.08
    window_scale: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.6, 1.6)
    noise_std: float = 0.04
    # Allowed flips/transposes as codes of :func:`_dihedral` (bit 0: left-right, bit 1: up-down,
    # bit 2: transpose). CT slices: all eight; radiographs are always upright: left-right only.
    dihedral: tuple[int, ...] = tuple(range(8))


def _dihedral(t: torch.Tensor, code: int) -> torch.Tensor:
    if code & 1:
        t = t.flip(-1)
    if code & 2:
        t = t.flip(-2)
    if code & 4:
        t = t.transpose(-1, -2)
    return t


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def augment(image: torch.Tensor, label: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: image (B, 1, S, S) in [0, 1], label (B, 1, S, S) integer classes."""
    image, label = geometric(image, label, cfg, gen)
    return intensity(image, cfg, gen), label


def geometric(image: torch.Tensor, label: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The flips, rotation, zoom and shift of :func:`augment`, the same for image and label."""
    b, device = image.shape[0], image.device
    codes = [cfg.dihedral[i] for i in torch.randint(0, len(cfg.dihedral), (b,), generator=gen).tolist()]
    image = torch.stack([_dihedral(image[i], c) for i, c in enumerate(codes)])
    label = torch.stack([_dihedral(label[i], c) for i, c in enumerate(codes)])

    scale = 1.0 / _uniform(b, *cfg.zoom, gen)
    angle = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, gen) * math.pi / 180.0
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale * torch.cos(angle)
    theta[:, 0, 1] = -scale * torch.sin(angle)
    theta[:, 1, 0] = scale * torch.sin(angle)
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, :, 2] = _uniform(2 * b, -cfg.shift, cfg.shift, gen).view(b, 2)
    grid = F.affine_grid(theta.to(device), list(image.shape), align_corners=False)
    image = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    label = F.grid_sample(label.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False).long()
    return image, label


def intensity(image: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """The window jitter, gamma and noise of :func:`augment`: drawn twice on one geometry, two
    views of a slice that must get the same labels (the teacher's consistency)."""
    b, device = image.shape[0], image.device
    offset = _uniform(b, -cfg.window_shift, cfg.window_shift, gen).view(b, 1, 1, 1).to(device)
    width = _uniform(b, *cfg.window_scale, gen).view(b, 1, 1, 1).to(device)
    gamma = _uniform(b, *cfg.gamma, gen).view(b, 1, 1, 1).to(device)
    image = ((image - offset) / width).clamp(0.0, 1.0) ** gamma
    sigma = _uniform(b, 0.0, cfg.noise_std, gen).view(b, 1, 1, 1)
    return image + (sigma * torch.randn(image.shape, generator=gen)).to(device)


def perturb_mask(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Grow or shrink a (B, 1, S, S) binary mask by a pixel or two, as a predicted lesion would be."""
    out = []
    for m in mask:
        k = int(torch.randint(0, 5, (1,), generator=gen))
        m = m[None].float()
        if k in (1, 2):
            m = F.max_pool2d(m, 2 * k + 1, stride=1, padding=k)
        elif k in (3, 4):
            r = k - 2
            m = 1.0 - F.max_pool2d(1.0 - m, 2 * r + 1, stride=1, padding=r)
        out.append(m[0])
    return torch.stack(out)


def random_patch(image: torch.Tensor, label: torch.Tensor, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``size``² window of each (B, C, S, S) sample: the network is fully convolutional,
    so it trains on windows and runs on whole inputs, at a resolution that would cost twice as
    much per step if trained whole."""
    s = image.shape[-1]
    if size >= s:
        return image, label
    corners = torch.randint(0, s - size + 1, (image.shape[0], 2), generator=gen).tolist()
    image = torch.stack([image[i, :, r:r + size, c:c + size] for i, (r, c) in enumerate(corners)])
    label = torch.stack([label[i, :, r:r + size, c:c + size] for i, (r, c) in enumerate(corners)])
    return image, label
