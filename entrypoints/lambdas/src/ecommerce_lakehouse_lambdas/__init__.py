"""The AWS Lambda functions of ecommerce-lakehouse.

* ``ecommerce_lakehouse_lambdas.trigger.handler`` - S3 ``ObjectCreated`` notifications of raw
  CSVs start the state machine, once per object version, never overlapping a running one;
  a file that arrives during a run waits, and the sweep when that run ends (an EventBridge
  execution status change, or the five-minute schedule) starts the next run for it.
* ``ecommerce_lakehouse_lambdas.archive.handler`` - the state machine's archive step: moves
  exactly the files the Glue job's run committed or rejected.

Both import only the pure core, the S3 parts of ``ecommerce_lakehouse_aws`` and boto3: no
engine, pyarrow, DuckDB or dependency-injector, so their deployment packages stay small.
"""
