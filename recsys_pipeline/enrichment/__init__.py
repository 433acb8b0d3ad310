"""Item enrichment: Steam store matches, Wikipedia summaries, LLM-extracted facts, profiles."""
