"""ecommerce-lakehouse: raw e-commerce CSV drops to validated Delta Lake tables."""
