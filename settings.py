"""The numbers every module shares: where a series sits in the window, the AMs' front end, their classes.

Pure Python: importing it starts no TensorFlow.
"""

from __future__ import annotations

# Where a series sits in the AM's 1 s window: zero samples before its first copy. The original's AM saw the
# series shifted by 448 samples (its kapre-0.1 STFT padded 448 on the left, 'same'); today's weights expect
# no padding, so at 0 the series falls on the edge of the first Hann window (docs/differences.md).
DEFAULT_OFFSET = 448

# The AMs' STFT front end (speech_models): 1 s at 16 kHz -> 125 frames x 80 mel bins.
N_FFT = 1024  # samples per STFT frame (64 ms at 16 kHz)
HOP = 128  # samples between frames (8 ms)
N_FRAMES = 125  # STFT frames for 16000 samples with end padding
N_MELS = 80  # mel bins

N_SOURCE = 36  # output classes of every source acoustic model (speech_models.SOURCE_CLASSES)
