from pipelines.datasets.ray_parquet import RayParquetDataset

__all__ = ["RayParquetDataset"]
