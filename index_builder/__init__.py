"""Offline index builder: PDFs from a folder or S3 into a versioned FAISS index."""
