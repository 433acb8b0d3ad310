"""The Dagster layer: thin asset and check functions over the plain modules, one module per stage."""
