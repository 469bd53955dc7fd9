"""Polars + delta-rs table engine."""
