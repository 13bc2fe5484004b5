"""baselines/mef (filled by later issues)."""
