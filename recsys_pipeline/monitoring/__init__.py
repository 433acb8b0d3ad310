"""What long-running plain code tells its caller's log while it works (no Dagster here: an asset
passes ``context.log.info``)."""
