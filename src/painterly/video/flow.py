"""Optical flow, warping and the forward-backward consistency mask (Ruder et al. 2016), with
OpenCV's DIS flow; and the temporal loss. Part of video mode (video/stylize.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from painterly.imaging import color
from painterly.video.io import DIS_PRESET, MAX_FLOW_ERROR, MIN_RELIABLE


# --- optical flow, warping and the consistency mask -----------------------------------------------
def _grey(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3:
        import cv2

        a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(a)


def flow(a, b, preset: str = DIS_PRESET) -> np.ndarray:
    """Dense optical flow from image a to image b (OpenCV DIS): (H, W, 2) float32 (dx, dy) with
    a(p) ~ b(p + flow(p)). a, b: PIL images or (H, W[, 3]) arrays of the same size.

    Departure: the paper uses DeepFlow or EpicFlow (minutes per frame); DIS runs in milliseconds
    on a CPU with the same forward-backward check on top."""
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    dis = cv2.DISOpticalFlow_create(presets[preset])
    return dis.calc(_grey(a), _grey(b), None).astype(np.float32)


def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(img: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Sample img at p + f(p) (bilinear, edges replicated): with f the backward flow from frame
    t to frame t-1, this carries frame t-1's pixels to where they are in frame t.
    img: (H, W) or (H, W, C) float32; f: (H, W, 2)."""
    import cv2

    h, w = f.shape[:2]
    gx, gy = _grid(h, w)
    return cv2.remap(
        np.ascontiguousarray(img, dtype=np.float32),
        gx + f[..., 0],
        gy + f[..., 1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def consistency(back: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """The paper's reliability mask c for frame t: (H, W) float32, 1 where the flow is reliable.

    back: flow from frame t to t-1; fwd: flow from frame t-1 to t. With w~ = fwd warped to
    frame t (w~(p) = fwd(p + back(p))), a pixel is disoccluded when
        |w~ + back|^2 > 0.01 (|w~|^2 + |back|^2) + 0.5
    and on a motion boundary when
        |grad back_u|^2 + |grad back_v|^2 > 0.01 |back|^2 + 0.002;
    both get c = 0 (the paper, eqs. 5-6), and so does a pixel whose backward flow leaves the
    frame (as in the authors' consistencyChecker). Departure: their checker then smooths the
    mask with a Gaussian (sigma 0.8); ours stays binary.
    """
    h, w = back.shape[:2]
    gx, gy = _grid(h, w)
    bx, by = gx + back[..., 0], gy + back[..., 1]
    inside = (bx >= 0) & (bx <= w - 1) & (by >= 0) & (by <= h - 1)
    fw = warp(fwd, back)
    disoccluded = ((fw + back) ** 2).sum(-1) > 0.01 * ((fw**2).sum(-1) + (back**2).sum(-1)) + 0.5
    # central differences, as the authors' CDerivative(3)
    du_dy, du_dx = np.gradient(back[..., 0])
    dv_dy, dv_dx = np.gradient(back[..., 1])
    edge = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > 0.01 * (back**2).sum(-1) + 0.002
    return (inside & ~disoccluded & ~edge).astype(np.float32)


@dataclass
class Motion:
    """The motion from content frame t-1 to frame t, and whether it looks like a shot cut."""

    back: np.ndarray  # (H, W, 2) flow from t to t-1
    fwd: np.ndarray  # (H, W, 2) flow from t-1 to t
    mask: np.ndarray  # (H, W) c: 1 where reliable
    reliable: float  # share of pixels with c = 1
    error: float  # mean |frame t - warped frame t-1| over reliable pixels (grey, [0, 1])
    cut: bool


def motion(
    prev, cur, preset: str = DIS_PRESET, min_reliable: float = MIN_RELIABLE, max_error: float = MAX_FLOW_ERROR
) -> Motion:
    """Flows both ways, the consistency mask, and the shot-cut test between two content frames."""
    a, b = _grey(prev), _grey(cur)
    back, fwd = flow(b, a, preset), flow(a, b, preset)
    mask = consistency(back, fwd)
    reliable = float(mask.mean())
    residual = np.abs(b.astype(np.float32) - warp(a.astype(np.float32), back)) / 255.0
    error = float((residual * mask).sum() / max(mask.sum(), 1.0)) if reliable > 0 else 1.0
    return Motion(back, fwd, mask, reliable, error, reliable < min_reliable or error > max_error)


class TemporalLoss:
    """The paper's short-term temporal loss: (1/D) sum_k c_k (x_k - w_k)^2, D = C*H*W, with w
    the warped previous stylised frame and c the reliability mask. Called with the iterate x
    (1, C, h, w); a coarser x or a luminance-only x (--preserve-color luminance) gets w and c
    resized / converted to match."""

    def __init__(self, warped: torch.Tensor, mask: torch.Tensor):
        self.warped, self.mask = warped, mask  # (1, 3, H, W), (1, 1, H, W)
        self._at: Dict[tuple, tuple] = {}

    def targets(self, shape, device) -> tuple:
        key = (tuple(shape), str(device))
        if key not in self._at:
            w, c = self.warped, self.mask
            if tuple(w.shape[-2:]) != tuple(shape[-2:]):
                w = F.interpolate(w, size=tuple(shape[-2:]), mode="area")
                c = F.interpolate(c, size=tuple(shape[-2:]), mode="area")
            if shape[1] == 1:
                w = color.luminance_only(w)[:, :1]
            self._at[key] = (w.to(device), c.to(device))
        return self._at[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        w, c = self.targets(x.shape, x.device)
        return (c * (x - w) ** 2).sum() / x.numel()
