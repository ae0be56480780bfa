"""Small shared helpers: atomic result files, seeding, provenance, errors."""
