"""Image-quality metrics: PSNR and SSIM under named conventions, and the official MEF-SSIM.

Importing this package loads numpy and scipy only; torch is imported when a float image needs
quantising.
"""

from cfanet.metrics.mef_ssim import MefSsimResult, mef_ms_ssim, mef_ssim_map, mef_ssim_single, to_mef_gray
from cfanet.metrics.psnr_ssim import CONVENTIONS, Convention, describe, get_convention, psnr, ssim

__all__ = [
    "CONVENTIONS",
    "Convention",
    "MefSsimResult",
    "describe",
    "get_convention",
    "mef_ms_ssim",
    "mef_ssim_map",
    "mef_ssim_single",
    "psnr",
    "ssim",
    "to_mef_gray",
]
