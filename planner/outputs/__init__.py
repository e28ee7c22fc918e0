"""What specplan shows: tables for people, JSON/YAML for scripts."""
