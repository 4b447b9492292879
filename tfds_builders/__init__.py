"""TFDS builders for spoken-caption corpora (one folder per dataset)."""
