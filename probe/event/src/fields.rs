//! Falco field catalogue: one table (name, type, description) that drives rule parsing, `falco-learn fields` and extraction.
