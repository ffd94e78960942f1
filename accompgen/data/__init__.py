"""Stems in, token shards out: everything between a folder of songs and the training loop."""
