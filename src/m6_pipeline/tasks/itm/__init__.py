"""Image-text matching (§4.6, E-Commerce ITM): is this query about this product image?
Queries of 6-12 words from the terms of a product's text; negatives by substituting another
product's query; accuracy as Table 7."""
