"""Image-quality metrics: PSNR and SSIM under named conventions, the official MEF-SSIM and MEFB's
Q^AB/F, described in one registry (`cfanet.metrics.registry.METRICS`) that everything iterates over.

The computations are float64 torch on the input's device (CPU or CUDA); single-image functions
accept numpy arrays or tensors and return floats, the `*_batch` functions score N images of one
size in one pass and return tensors (the runner's scoring tasks use them on CUDA). Importing this
package loads numpy; torch is imported when a metric is computed.
"""

from cfanet.metrics.mef_ssim import (MefSsimResult, mef_ms_ssim, mef_ms_ssim_batch, mef_ssim_map, mef_ssim_single,
                                     to_mef_gray)
from cfanet.metrics.psnr_ssim import (CONVENTIONS, Convention, describe, get_convention, psnr, psnr_batch, ssim,
                                      ssim_batch)
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
    "mef_ms_ssim_batch",
    "mef_ssim_map",
    "mef_ssim_single",
    "psnr",
    "psnr_batch",
    "qabf",
    "ssim",
    "ssim_batch",
    "to_mef_gray",
]
