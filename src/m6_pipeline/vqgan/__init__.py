"""VQGAN (§4.1's first stage): images to discrete codes and back."""

from m6_pipeline.vqgan.config import LossConfig, VQGANConfig, VQGANJob, VQGANTraining
from m6_pipeline.vqgan.model import VQGAN
from m6_pipeline.vqgan.store import load_vqgan, save_vqgan

__all__ = ["VQGAN", "LossConfig", "VQGANConfig", "VQGANJob", "VQGANTraining", "load_vqgan", "save_vqgan"]
