"""The starting image of a run (--init): noise, the photo, the photo in the painting's palette,
the painting, a file, or the previous scale's result upsampled."""

from __future__ import annotations

import torch

from painterly.imaging import color, fit_to, load_image, to_tensor
from painterly.net.device import on_host_if_unsupported as hosted
from painterly.net.device import resize
from painterly.options import Options


def initial(o: Options, prev, size, content, styles, gen, device, luminance, init=None) -> torch.Tensor:
    """The starting image: the upsampled previous scale, or `init`, or noise | content | style | a file."""
    w, h = size
    ch = 1 if luminance else 3
    if prev is not None:
        return resize(prev, (h, w), "bicubic", align_corners=False).clamp(0, 1)
    if init is not None:
        t = init if isinstance(init, torch.Tensor) else to_tensor(load_image(init))
        t = t.to(device=device, dtype=torch.float32)
        if t.shape[-2:] != (h, w):
            t = resize(t, (h, w), "bicubic", align_corners=False).clamp(0, 1)
        return hosted(color.luminance_only, t)[:, :1] if luminance else t
    if o.init == "noise":
        # The paper starts from white noise without giving its amplitude. Noise over the whole
        # pixel range is never cleaned by the optimisation (measured: SSIM 0.05 to the photo after
        # 500 steps), so it is centred on mid-grey with a range of --noise-amplitude (0.2).
        u = torch.rand((1, ch, h, w), generator=gen)  # on the CPU: the same noise on every device
        return (0.5 + o.noise_amplitude * (u - 0.5)).to(device)
    if o.init == "palette" and len(styles) == 1 and o.preserve_color == "none":
        # Departure (the default; the paper starts from noise): the photo in the painting's colour
        # mean and covariance (--preserve-color histogram the other way round), so the palette is
        # there from the first step (P median 0.34 on the wide set) and the steps go to the marks.
        return hosted(color.match_histogram, content, styles[0], o.color_match).clamp(0, 1)
    if o.init in ("content", "palette"):  # palette with several styles or colours kept: the photo
        return content.clone()
    if o.init == "style":
        return resize(styles[0], (h, w), "bicubic", align_corners=False).clamp(0, 1)
    t = to_tensor(fit_to(load_image(o.init), (w, h))).to(device)
    return hosted(color.luminance_only, t)[:, :1] if luminance else t
