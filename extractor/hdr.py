"""HDR video frames as an SDR player shows them (pure computation).

An HDR video (HDR10's PQ curve, SMPTE ST 2084; or HLG, ARIB STD-B67: a phone's HDR video)
decodes, through FFmpeg's plain conversion to 8-bit BGR (faceswap's frames too), to its encoded
signal: a flat, washed-out picture, where faces are placed less well. Players tone-map it. The
detector and the aligner look at it so (``as_sdr``): each channel through one 256-entry table,
the signal -> light in nits (BT.2100) -> SDR, its reference white at 203 nits (BT.2408), the
highlights above 80 % of it rolled off smoothly -> the sRGB curve. Colours stay in the stored
primaries (BT.2020 seen as BT.709: a little less saturated than a player shows them).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

REFERENCE_WHITE_NITS = 203.0  # BT.2408: the HDR signal's level of SDR's white
KNEE = 0.8  # SDR light (white = 1) above which highlights are rolled off towards 1
TRANSFERS = {16: "pq", 18: "hlg"}  # FFmpeg's AVColorTransferCharacteristic values


# SMPTE ST 2084 (PQ) and ARIB STD-B67 (HLG) constants, and BT.2100's HLG display: peak and system gamma.
PQ_M1, PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
PQ_C1, PQ_C2, PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
HLG_A, HLG_B, HLG_C = 0.17883277, 0.28466892, 0.55991073
HLG_PEAK_NITS, HLG_GAMMA = 1000.0, 1.2


def pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's EOTF: PQ signal (0-1) -> display light (nits)."""
    power = np.power(np.clip(signal, 0, 1), 1 / PQ_M2)
    return 10000.0 * np.power(np.maximum(power - PQ_C1, 0) / (PQ_C2 - PQ_C3 * power), 1 / PQ_M1)


def nits_to_pq(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's inverse EOTF: display light (nits) -> PQ signal (0-1)."""
    light = np.power(np.clip(nits / 10000.0, 0, 1), PQ_M1)
    return np.power((PQ_C1 + PQ_C2 * light) / (1 + PQ_C3 * light), PQ_M2)


def hlg_to_nits(signal: np.ndarray) -> np.ndarray:
    """ARIB STD-B67's inverse OETF, then BT.2100's OOTF on its 1000-nit display (per channel)."""
    signal = np.clip(signal, 0, 1)
    scene = np.where(signal <= 0.5, signal ** 2 / 3, (np.exp((signal - HLG_C) / HLG_A) + HLG_B) / 12)
    return HLG_PEAK_NITS * np.power(scene, HLG_GAMMA)


def nits_to_hlg(nits: np.ndarray) -> np.ndarray:
    """BT.2100's inverse OOTF on its 1000-nit display, then ARIB STD-B67's OETF: -> HLG signal (0-1)."""
    scene = np.power(np.clip(nits / HLG_PEAK_NITS, 0, 1), 1 / HLG_GAMMA)
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), HLG_A * np.log(np.maximum(12 * scene - HLG_B, 1e-12)) + HLG_C)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light (0-1) -> the sRGB curve's values (0-1)."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def _from_srgb(values: np.ndarray) -> np.ndarray:
    """The sRGB curve's values (0-1) -> linear light (0-1)."""
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _rolled_off(light: np.ndarray) -> np.ndarray:
    """SDR light (white = 1) with what lies above ``KNEE`` compressed smoothly under 1."""
    over = np.maximum(light - KNEE, 0) / (1 - KNEE)
    return np.where(light <= KNEE, light, KNEE + (1 - KNEE) * (1 - np.exp(-over)))


def hdr_signal(image: np.ndarray, transfer: str) -> np.ndarray:
    """An 8-bit SDR picture as an HDR master carries it (its white at ``REFERENCE_WHITE_NITS``):
    the ``transfer`` signal, 0-1. What tests and tools make HDR video from."""
    nits = REFERENCE_WHITE_NITS * _from_srgb(image / 255.0)
    return nits_to_pq(nits) if transfer == "pq" else nits_to_hlg(nits)


@lru_cache(maxsize=4)
def sdr_table(transfer: str) -> np.ndarray:
    """The 256-entry table that takes an 8-bit ``transfer`` ("pq" or "hlg") signal to 8-bit SDR."""
    signal = np.arange(256) / 255.0
    nits = pq_to_nits(signal) if transfer == "pq" else hlg_to_nits(signal)
    sdr = _to_srgb(_rolled_off(nits / REFERENCE_WHITE_NITS))
    return np.clip(np.round(sdr * 255), 0, 255).astype(np.uint8)


def as_sdr(image: np.ndarray, transfer: str | None) -> np.ndarray:
    """An 8-bit frame decoded from an HDR video (``transfer``), as an SDR player shows it; the
    frame itself where ``transfer`` is None."""
    return image if transfer is None else cv2.LUT(image, sdr_table(transfer))
