"""The stage Transformer, its configuration, and model directories (torch)."""
