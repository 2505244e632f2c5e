"""Video: style a clip without flicker (Ruder et al. 2016).

stylize.py   stylize_video and the `video` verb
io.py        reading and writing clips with PyAV
flow.py      optical flow (OpenCV DIS), warping, the consistency mask, the temporal loss
"""
