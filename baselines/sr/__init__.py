"""baselines/sr (filled by later issues)."""
