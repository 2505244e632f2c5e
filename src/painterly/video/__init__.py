"""Video: style a clip without flicker (Ruder et al. 2016).

stylize.py   stylize_video: every frame on one prepared Stylizer, the temporal term
verb.py      the `video` verb (a thin shell around stylize_video)
cache.py     the frame cache a stopped run continues from
io.py        reading and writing clips with PyAV
flow.py      optical flow (OpenCV DIS), warping, the consistency mask, the temporal loss
"""
