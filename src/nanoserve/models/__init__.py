"""Facts about model files (GGUF metadata), read without loading an engine."""
