"""Image captioning (§4.3, E-Commerce IC): product image -> description, finetuned with the
image-to-text layout of pretraining (the image alone as prefix, no prompt)."""
