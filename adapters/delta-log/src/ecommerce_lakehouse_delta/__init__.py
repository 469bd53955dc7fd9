"""Delta log conventions both Delta engines share (distribution ``ecommerce-lakehouse-delta``).

The Polars engine (delta-rs) and the Spark engine (delta-spark) write the same tables, and
each must read the commits the other wrote. They disagree on how: delta-rs stores custom
metadata as top-level ``commitInfo`` keys and its operation metrics as snake_case integers,
Spark stores one ``userMetadata`` string and camelCase metrics as text.
:mod:`ecommerce_lakehouse_delta.commit_info` reads both forms into one. These are details
of the Delta log, so they live here rather than in the engine-neutral core; the package
needs only the standard library.
"""
