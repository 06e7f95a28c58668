"""Image patch features of §3.1: resize, cut into a grid of patches, embed each patch with a
trained extractor (ResNet-50 from local ImageNet weights, or a patch autoencoder trained on
the corpus images), line the features up by position."""

from m6_pipeline.features.config import AutoencoderTraining, FeaturesConfig
from m6_pipeline.features.extract import decode_patch_features, extract_patch_features
from m6_pipeline.features.patch_autoencoder import PatchAutoencoder, train_patch_autoencoder
from m6_pipeline.features.patches import PatchExtractor, split_patches
from m6_pipeline.features.resnet import MissingWeightsError, ResNet50, load_resnet50

__all__ = [
    "AutoencoderTraining",
    "FeaturesConfig",
    "MissingWeightsError",
    "PatchAutoencoder",
    "PatchExtractor",
    "ResNet50",
    "decode_patch_features",
    "extract_patch_features",
    "load_resnet50",
    "split_patches",
    "train_patch_autoencoder",
]
