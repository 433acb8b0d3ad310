"""Ranking: metrics, full ranking of any scorer, model scores, faiss retrieval, baselines, the evaluation protocol."""
