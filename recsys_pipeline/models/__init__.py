"""The SASRec model family. Each module registers its classes with transformers' Auto classes
when it is imported; ``import recsys_pipeline`` arranges for that to happen."""
