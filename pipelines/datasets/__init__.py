from pipelines.datasets.arrow_batches import ArrowBatchesDataset
from pipelines.datasets.ray_parquet import RayParquetDataset
from pipelines.datasets.tokenizer_json import TokenizerJSONDataset

__all__ = ["ArrowBatchesDataset", "RayParquetDataset", "TokenizerJSONDataset"]
