"""A worked example of a cfanet-bench plugin (see methods.py and the README next to it)."""
