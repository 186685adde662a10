"""Face data (numpy + Pillow): the procedural ``synth`` set, readers of the real
formats and the dataset-spec strings every stage accepts (``open_dataset``)."""
from .base import DataError, FaceSet, Record, RecordSet, Skips
from .spec import FORMATS, open_dataset, open_splits, parse

__all__ = ["DataError", "FaceSet", "Record", "RecordSet", "Skips", "FORMATS", "open_dataset", "open_splits", "parse"]
