"""baselines/joint (filled by later issues)."""
