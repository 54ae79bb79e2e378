"""claims-ocr: claims OCR ingestion (mail -> OCR -> fields -> NCB or review)."""

__version__ = "0.1.0"
