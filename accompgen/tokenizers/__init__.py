"""The semantic (HuBERT + k-means) and acoustic (EnCodec) tokenizers, loaded through transformers (torch)."""
