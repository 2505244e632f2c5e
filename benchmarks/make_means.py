"""Measure the reference means of the original VGG-19 (normalize.reference_means) and write
src/painterly/data/means-<sha>.pt: per-filter mean ReLU activations over the photographs
and paintings of ../shared/images at 256 and 512 px, for avg and max pooling.

    PYTHONPATH=src .venv/bin/python benchmarks/make_means.py
"""

import sys
from pathlib import Path

import torch

from painterly import imaging as images
from painterly.engine import Stylizer
from painterly.net.normalize import REFERENCE_SIDES, means_file, measure_means

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def main() -> int:
    pics = sorted(SHARED.glob("*.jpg"))
    ims = [images.load_image(p) for p in pics]
    out = {"images": [p.name for p in pics], "sides": list(REFERENCE_SIDES)}
    for pooling in ("avg", "max"):
        # The raw network (normalize=False: these means are what normalisation divides by).
        st = Stylizer(
            pooling=pooling,
            normalize=False,
            precision="fp32",
            channels_last=False,
            device="cpu",
            content_layers=("relu5_4",),
        ).prepare()
        net, sha = st.net, st.sha256
        out[pooling] = {k: v.to(torch.float32) for k, v in measure_means(net, ims).items()}
    path = means_file(sha)
    torch.save(out, path)
    print(f"wrote {path} ({path.stat().st_size} bytes) from {len(pics)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
