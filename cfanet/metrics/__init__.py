"""Image-quality metrics: PSNR and SSIM under named conventions, the official MEF-SSIM and MEFB's
Q^AB/F, described in one registry (`cfanet.metrics.registry.METRICS`) that everything iterates over.

Importing this package loads numpy and scipy only; torch is imported when a float image needs
quantising.
"""

from cfanet.metrics.mef_ssim import MefSsimResult, mef_ms_ssim, mef_ssim_map, mef_ssim_single, to_mef_gray
from cfanet.metrics.psnr_ssim import CONVENTIONS, Convention, describe, get_convention, psnr, ssim
from cfanet.metrics.qabf import qabf
from cfanet.metrics.registry import METRICS, Metric, get_metric

__all__ = [
    "CONVENTIONS",
    "Convention",
    "METRICS",
    "Metric",
    "MefSsimResult",
    "describe",
    "get_convention",
    "get_metric",
    "mef_ms_ssim",
    "mef_ssim_map",
    "mef_ssim_single",
    "psnr",
    "qabf",
    "ssim",
    "to_mef_gray",
]
