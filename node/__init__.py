"""The Rogatory node: I/O around the pure protocol (HTTP, SQLite, CLI)."""
