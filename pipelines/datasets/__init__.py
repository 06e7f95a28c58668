from pipelines.datasets.ray_parquet import RayParquetDataset
from pipelines.datasets.tokenizer_json import TokenizerJSONDataset

__all__ = ["RayParquetDataset", "TokenizerJSONDataset"]
