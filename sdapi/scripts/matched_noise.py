"""Outpainting mk2's fill for the new area: noise shaped in frequency space to look like the known image
(A1111 v1.2.1's ``get_matched_noise``, from g-diffuser), in numpy.

1. The known image, its masked part replaced by its mean colour, gives an amplitude and phase spectrum.
2. White noise from a generator seeded with 0 (the same noise every call: outpainting follows only the request's
   seed), mostly grey (``color_variation`` keeps that much of each channel's own noise), is low-passed with a
   ``1 / ((x^2 + 1)(y^2 + 1))`` window.
3. The noise's spectrum takes the image's amplitude (raised to ``noise_q``) and phase; back in image space it is
   normalised to 0..1 and, inside the mask, its histogram is matched channel by channel to the known pixels'.
4. Known pixels are kept; masked ones get the shaped noise, in proportion to the mask.

Spectra are centred (shifted before and after each transform) and orthonormal, as in A1111. Where A1111 divides
0 by 0 (a frequency the image lacks entirely, common in flat or synthetic images; an all-black or constant
picture) and its whole result turns to NaN, and so black, here that frequency contributes nothing and a zero
range is left unscaled.
"""

from __future__ import annotations

import numpy as np

AXES = (0, 1)


def _fft2(data: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT of each channel."""
    return np.fft.ifftshift(np.fft.fft2(np.fft.fftshift(data, axes=AXES), axes=AXES, norm="ortho"), axes=AXES)


def _ifft2(data: np.ndarray) -> np.ndarray:
    """Its inverse, shifted the same way (A1111 shifts with ``fftshift`` before both transforms)."""
    return np.fft.ifftshift(np.fft.ifft2(np.fft.fftshift(data, axes=AXES), axes=AXES, norm="ortho"), axes=AXES)


def low_pass_window(rows: int, columns: int) -> np.ndarray:
    """The noise window (A1111's ``_get_gaussian_window`` mode 1 at its default ``std``): coordinates run from -1
    to 1 along the shorter side and proportionally further along the longer one."""
    shorter = min(rows, columns)
    x = (np.arange(rows) / rows * 2.0 - 1.0) * (rows / shorter)
    y = (np.arange(columns) / columns * 2.0 - 1.0) * (columns / shorter)
    return 1.0 / ((x[:, None] ** 2 + 1.0) * (y[None, :] ** 2 + 1.0))


def match_histogram(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source``'s values remapped so that their distribution follows ``reference``'s (one channel): each
    distinct value goes to the reference value at the same cumulative quantile, interpolated linearly."""
    values, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = np.unique(reference.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    ref_quantiles = np.cumsum(ref_counts) / reference.size
    return np.interp(quantiles, ref_quantiles, ref_values)[inverse.ravel()].reshape(source.shape)


def _scaled(array: np.ndarray) -> np.ndarray:
    """``array`` divided by its maximum (unchanged when that is 0)."""
    top = np.max(array)
    return array / top if top > 0 else array


def matched_noise(image: np.ndarray, mask: np.ndarray, noise_q: float = 1.0,
                  color_variation: float = 0.05) -> np.ndarray:
    """The image with its masked part filled by matched noise.

    Args:
        image: ``(rows, columns, 3)`` floats in 0..1.
        mask: the same shape, 1 where the image is unknown.
        noise_q: the fall-off exponent of the image's amplitude (lower: more detail).
        color_variation: how much colour the starting noise keeps.

    Returns:
        ``(rows, columns, 3)`` floats clipped to 0..1.
    """
    rows, columns, channels = image.shape
    grey_mask = mask.sum(axis=2) / 3.0
    unknown, known = grey_mask > 1e-6, grey_mask < 1e-3
    windowed = image * (1.0 - np.repeat(grey_mask[:, :, None], 3, axis=2))
    windowed = _scaled(windowed)
    windowed += np.average(image) * mask
    spectrum = _fft2(windowed)
    amplitude = np.absolute(spectrum)
    phase = np.divide(spectrum, amplitude, out=np.zeros_like(spectrum), where=amplitude > 0)

    rng = np.random.default_rng(0)
    noise = rng.random((rows, columns, channels))
    grey_noise = noise.sum(axis=2) / 3.0
    noise *= color_variation
    noise += ((1.0 - color_variation) * grey_noise)[:, :, None]
    noise = np.real(_ifft2(_fft2(noise) * low_pass_window(rows, columns)[:, :, None]))

    shaped = np.real(_ifft2(np.absolute(_fft2(noise)) ** 2 * amplitude ** noise_q * phase))
    shaped = _scaled(shaped - np.min(shaped))
    if unknown.any() and known.any():  # A1111 fails when either is empty
        picked, reference = shaped[unknown, :], image[known, :]
        shaped[unknown, :] = np.stack([match_histogram(picked[:, c], reference[:, c])
                                       for c in range(channels)], axis=1)
    return np.clip(image * (1.0 - mask) + shaped * mask, 0.0, 1.0)
