"""Pitch measurement for the audio tests: YIN over frames, refined on the spectrum."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def yin(frame: Floats, rate: int, low_hz: float = 40.0, high_hz: float = 2500.0) -> float:
    """The fundamental of one frame by YIN (de Cheveigné & Kawahara 2002): the first
    dip of the cumulative-mean-normalized difference under 0.1, interpolated."""
    size = frame.size
    lag_max = min(int(rate / low_hz), size // 2)
    lag_min = max(2, int(rate / high_hz))
    spectrum = np.fft.rfft(frame, 2 * size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[: lag_max + 2]
    energy = np.concatenate(([0.0], np.cumsum(frame * frame)))
    lags = np.arange(lag_max + 2)
    # d(tau) = sum over j < size - tau of (x[j] - x[j + tau])^2
    diff = energy[size - lags] + (energy[size] - energy[lags]) - 2.0 * correlation
    cmnd = np.ones_like(diff)
    running = np.cumsum(diff[1:])
    cmnd[1:] = diff[1:] * np.arange(1, diff.size) / np.maximum(running, 1e-12)
    below = np.nonzero(cmnd[lag_min : lag_max + 1] < 0.1)[0]
    window = cmnd[lag_min : lag_max + 1]
    tau = lag_min + (int(below[0]) if below.size else int(np.argmin(window)))
    while tau + 1 <= lag_max and cmnd[tau + 1] < cmnd[tau]:
        tau += 1
    a, b, c = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
    return rate / (tau + shift)


def spectral_peak(signal: Floats, rate: int, near_hz: float, width: float = 0.03) -> float:
    """The strongest spectral peak within ``width`` of ``near_hz`` (Hann window, zero
    padded, parabolic interpolation on the log magnitude)."""
    padded = 1 << int(np.ceil(np.log2(signal.size * 8)))
    magnitude = np.abs(np.fft.rfft(signal * np.hanning(signal.size), padded))
    hz = np.fft.rfftfreq(padded, 1.0 / rate)
    band = np.nonzero((hz > near_hz * (1 - width)) & (hz < near_hz * (1 + width)))[0]
    k = int(band[np.argmax(magnitude[band])])
    a, b, c = np.log(magnitude[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
    return float((k + shift) * rate / padded)


def fundamental(signal: Floats, rate: int, frame_s: float = 0.06) -> float:
    """The pitch of a held note: YIN's median over frames, refined to the spectral
    peak of the whole stretch near it (the average pitch under vibrato)."""
    size = int(frame_s * rate)
    hop = size // 2
    estimates = [yin(signal[i : i + size], rate) for i in range(0, signal.size - size + 1, hop)]
    rough = float(np.median(estimates))
    return spectral_peak(signal, rate, rough)
