"""Local platform adapters: filesystem storage, SQLite catalogue, DuckDB SQL, file lock."""
