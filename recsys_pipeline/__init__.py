"""recsys_pipeline: a sequential recommender for video-game products, as a Dagster asset graph."""
