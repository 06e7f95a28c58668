"""Text-to-image (§4.1): M6 finetuned to write VQGAN codes after Chinese text."""
