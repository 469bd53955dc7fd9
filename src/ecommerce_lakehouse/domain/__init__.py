"""Domain: schemas, rules, specs, audit records and errors (no engine imports)."""
