"""Inputs and their lineage: histories, the input CSV, the Amazon download, the split, the item vocabulary and tokenizer, the artifact store."""
