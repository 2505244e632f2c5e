"""The network: weights sets (weights.py), VGG-19 with named layers (vgg.py), the paper's
normalisation (normalize.py), layer geometry for tiles (geometry.py), device and precision
(device.py)."""
