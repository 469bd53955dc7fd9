"""The AWS Glue job of ecommerce-lakehouse (Spark engine)."""
