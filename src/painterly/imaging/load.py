"""Image input: loading any image as RGB (ICC profiles, EXIF orientation, modes), tensors and
resizing.

Tensors are (1, 3, H, W) float32 RGB in [0, 1]; PIL images are (W, H) in Pillow's order.
Every failure the user can fix raises ImageError with a one-line message naming the file; no
Pillow or OS traceback escapes, and nothing prints.
"""

from __future__ import annotations

import functools
import io
import math
import os
import stat
import warnings
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from painterly.errors import ImageError, InvalidOption, reason, shown_path
from painterly.options import MAX_INPUT_PIXELS

PathLike = Union[str, "os.PathLike[str]"]
WHITE = (255, 255, 255)


# --- loading -------------------------------------------------------------------------------
def load_image(src: Union[PathLike, Image.Image], max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    """Load `src` (a path or a PIL image) as an upright 8-bit RGB image of size (W, H).

    EXIF orientation is applied, an embedded ICC profile (Adobe RGB, Display P3, a CMYK
    press profile ...) is converted to sRGB (see `to_srgb`), transparency is composited on
    white and 16-bit / float images are scaled to 8 bits (see `to_rgb`). Images with more than
    `max_pixels` pixels
    are refused from their header, before any decoding. Raises ImageError.
    """
    if isinstance(src, Image.Image):
        return _finish(src, shown_path(getattr(src, "filename", "") or "<image>"), max_pixels)
    if not isinstance(src, (str, os.PathLike)):
        raise TypeError(f"load_image expects a path or a PIL image, not {type(src).__name__}")
    if not os.fspath(src):  # Path("") would be the current folder
        raise ImageError("cannot load image '': the path is empty")
    path = Path(src)
    name = shown_path(path)
    check_readable(path, name)
    try:
        with open_image(path, name, max_pixels) as im:
            return _finish(im, name, max_pixels)
    except OSError as e:  # closing the file
        raise ImageError(f"cannot load image '{name}': {reason(e)}") from None


def check_readable(
    path: Path, name: str, what: str = "load image", kind: str = "an image", error: type = ImageError
) -> None:
    """Raise `error` unless `path` is an existing, non-empty regular file (video/io.py reuses it
    for clips: what="read video", kind="a video")."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(f"cannot {what} '{name}': no such file") from None
    except OSError as e:
        raise error(f"cannot {what} '{name}': {reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"cannot {what} '{name}': is a directory, not {kind} file")
    if st.st_size == 0:
        raise error(f"cannot {what} '{name}': the file is empty")


def open_image(path: Path, name: str, max_pixels: int) -> Image.Image:
    """Image.open (header only) with Pillow's errors and bomb warning turned into ImageError."""
    try:
        with warnings.catch_warnings():  # we enforce our own limit; the library never prints
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError:
        raise ImageError(_too_large(name, None, max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"cannot load image '{name}': not an image file (or an unsupported format)"
        ) from None
    except Exception as e:  # OSError, SyntaxError, struct.error ... from a plugin
        raise ImageError(f"cannot load image '{name}': {reason(e)}") from None


def _finish(im: Image.Image, name: str, max_pixels: int) -> Image.Image:
    """Size check (header), full decode, EXIF orientation and RGB conversion of an open image."""
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError(_too_large(name, (w, h), max_pixels))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()  # decode everything now: a truncated file fails here, not later
            out = to_srgb(_upright(im), im.info.get("icc_profile"))
    except Image.DecompressionBombError:
        raise ImageError(_too_large(name, (w, h), max_pixels)) from None
    except Exception as e:
        raise ImageError(f"cannot load image '{name}': {reason(e)}") from None
    out.info = {}  # drop EXIF, ICC, comments: the pixels are plain sRGB from here on
    return out


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an unreadable EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        return im


def _too_large(name: str, size: Optional[Tuple[int, int]], max_pixels: int) -> str:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    dims = f" ({size[0]}x{size[1]} = {size[0] * size[1]:,} pixels)" if size else ""
    if size is None and pillow_limit is not None and 2 * pillow_limit < max_pixels:
        return (
            f"cannot load image '{name}': it exceeds Pillow's safety limit of "
            f"{2 * pillow_limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS)"
        )
    return f"cannot load image '{name}': the image{dims} exceeds the limit of {max_pixels:,} pixels"


def to_srgb(im: Image.Image, icc: Optional[bytes]) -> Image.Image:
    """`to_rgb`, with the colours converted from the image's ICC profile `icc` to sRGB.

    The network, the style statistics and every screen without colour management take
    pixels as sRGB; an Adobe RGB or Display P3 photo read as such comes out with wrong,
    dulled colours. LittleCMS (Pillow's ImageCms) does the conversion, perceptual intent
    with black-point compensation. No profile, an sRGB profile, or a profile LittleCMS
    cannot read or apply: the pixels are taken as sRGB, as browsers do.
    """
    source = _profile(icc)
    if source is None:
        return to_rgb(im)
    space = source.profile.xcolor_space.strip()
    if space == "RGB":
        im = to_rgb(im)  # 8-bit RGB in the profile's space (alpha composited first)
    elif not ((space == "CMYK" and im.mode == "CMYK") or (space == "GRAY" and im.mode == "L")):
        return to_rgb(im)  # a profile that does not describe these pixels
    try:
        return ImageCms.profileToProfile(
            im,
            source,
            _srgb_profile(),
            outputMode="RGB",
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
    except (ImageCms.PyCMSError, ValueError, OSError):
        return to_rgb(im)


def _profile(icc: Optional[bytes]):
    """The ICC profile in `icc` when it needs converting; None for none, sRGB or unreadable."""
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = profile.profile.profile_description or ""
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    return None if "sRGB" in description else profile


#: LittleCMS's built-in sRGB profile, saved once with a fixed creation date (2026-12-01):
#: ImageCms.createProfile("sRGB") stamps the current time into the header, which made two runs
#: with the same inputs, options and seed write different bytes.
SRGB_ICC = Path(__file__).resolve().parents[1] / "data" / "sRGB.icc"


@functools.lru_cache(maxsize=1)
def _srgb_profile():
    return ImageCms.ImageCmsProfile(io.BytesIO(srgb_icc()))


@functools.lru_cache(maxsize=1)
def srgb_icc() -> bytes:
    """The fixed sRGB profile (SRGB_ICC), embedded in every output so that colour-managed
    viewers and printers show what the tool painted; the same bytes in every run."""
    return SRGB_ICC.read_bytes()


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to a new 8-bit RGB image of the same size.

    Transparency (alpha bands, palette or colour-key transparency) is composited on white.
    Integer and float modes (I;16*, I, F) are scaled to 0..255 from their real range: the
    full 16-bit range for I;16*; for I and F, 0..1 / 0..255 / 0..65535 when the data fit
    in it, else the data's min..max. Nothing is clipped.
    """
    if im.mode.startswith("I") or im.mode == "F":
        return Image.fromarray(_scale_to_uint8(np.asarray(im), im.mode)).convert("RGB")
    if "A" in im.mode or "a" in im.mode or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", im.size, WHITE + (255,)), rgba).convert("RGB")
    return im.convert("RGB")


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) integer or float array -> (H, W) uint8, mapping its range linearly to 0..255."""
    a = a.astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode.startswith("I;16"):
        full = (0.0, 65535.0)
    else:
        ranges = ((0.0, 1.0), (0.0, 255.0), (0.0, 65535.0)) if mode == "F" else ((0.0, 255.0), (0.0, 65535.0))
        full = next(((a0, b0) for a0, b0 in ranges if a0 <= lo and hi <= b0), (lo, hi))
    span = full[1] - full[0] or 1.0
    out = np.nan_to_num((a - full[0]) * (255.0 / span), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


# --- tensors -------------------------------------------------------------------------------
def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image (W, H), any mode -> (1, 3, H, W) float32 RGB tensor in [0, 1]."""
    rgb = img if img.mode == "RGB" else to_rgb(img)
    arr = np.array(rgb, dtype=np.uint8)  # (H, W, 3), a writable copy
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def to_pil(t: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float tensor, any float dtype and device -> PIL RGB (W, H).

    Values are clamped to [0, 1] (NaN -> 0) and rounded to the nearest 8-bit level.
    """
    t = t.detach()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"to_pil expects a (1, 3, H, W) or (3, H, W) tensor, got {tuple(t.shape)}")
    t = torch.nan_to_num(t.float(), nan=0.0).clamp(0.0, 1.0).mul(255.0).round()
    return Image.fromarray(t.to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy())


# --- resizing ------------------------------------------------------------------------------
def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Resize (LANCZOS) so the longer side is `long_side`, keeping the aspect ratio.

    The short side is rounded to the nearest pixel (halves up) and is at least 1.
    """
    return fit_to(img, long_side_size(img.size, long_side))


def long_side_size(size: Tuple[int, int], long_side: int) -> Tuple[int, int]:
    """The (W, H) `resize_long_side` gives an image of `size`, without resizing anything."""
    if int(long_side) != long_side or long_side < 1:
        raise InvalidOption(f"invalid image size {long_side!r}: must be a positive number of pixels")
    w, h = size
    scale = long_side / max(w, h)
    return max(1, math.floor(w * scale + 0.5)), max(1, math.floor(h * scale + 0.5))


def fit_to(img: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """Resize (LANCZOS) to exactly `size` = (W, H), ignoring the aspect ratio; a new image."""
    w, h = (int(size[0]), int(size[1]))
    if w < 1 or h < 1:
        raise InvalidOption(f"invalid image size {w}x{h}: both sides must be at least 1 pixel")
    if (w, h) == img.size:
        return img.copy()
    return img.resize((w, h), Image.Resampling.LANCZOS)
